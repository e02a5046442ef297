//! The guard against pagination loops in one window (a Payments Direct search window, a
//! Checkout backfill period): a page token handed out twice would send the reader round the
//! same pages for ever; empty pages that keep handing out new tokens would spin without end.
//! Memory stays bounded: tokens are remembered as 64-bit hashes, at most
//! [`MAX_PAGES_PER_WINDOW`] of them.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Consecutive empty pages that still hand out a next token before the window is called a
/// loop (an API may return a few while it filters on its side).
pub const MAX_EMPTY_PAGES: usize = 10;
/// Pages one window may have; more is called a loop (and bounds the memory of the guard).
pub const MAX_PAGES_PER_WINDOW: usize = 100_000;

/// Why a window's pagination was stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaginationLoop {
    #[error("page {page} of the window handed out a page token it had already given")]
    RepeatedToken { page: usize },
    #[error("pages {first} to {page} of the window were empty and each handed out a new page token")]
    EmptyPages { first: usize, page: usize },
    #[error("the window has more than {MAX_PAGES_PER_WINDOW} pages")]
    TooManyPages,
}

/// The page tokens of one window so far.
#[derive(Debug, Default)]
pub struct PageTokens {
    seen: HashSet<u64>,
    pages: usize,
    empty_run: usize,
}

impl PageTokens {
    /// A window read from its start, or resumed at `token` (a saved position).
    pub fn new(resumed_at: Option<&str>) -> Self {
        let mut tokens = Self::default();
        if let Some(token) = resumed_at {
            tokens.seen.insert(hash(token));
        }
        tokens
    }

    /// The page just read held `items` and handed out `next`: whether following it is safe.
    pub fn follow(&mut self, items: usize, next: Option<&str>) -> Result<(), PaginationLoop> {
        self.pages = self.pages.saturating_add(1);
        let Some(next) = next else {
            return Ok(());
        };
        self.empty_run = if items == 0 { self.empty_run.saturating_add(1) } else { 0 };
        if self.empty_run > MAX_EMPTY_PAGES {
            let first = self.pages.saturating_sub(self.empty_run).saturating_add(1);
            return Err(PaginationLoop::EmptyPages { first, page: self.pages });
        }
        if self.seen.len() >= MAX_PAGES_PER_WINDOW {
            return Err(PaginationLoop::TooManyPages);
        }
        if !self.seen.insert(hash(next)) {
            return Err(PaginationLoop::RepeatedToken { page: self.pages });
        }
        Ok(())
    }
}

fn hash(token: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    token.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_token_is_a_loop_and_so_is_the_saved_one_coming_back() {
        let mut tokens = PageTokens::new(None);
        assert_eq!(tokens.follow(5, Some("a")), Ok(()));
        assert_eq!(tokens.follow(5, Some("b")), Ok(()));
        assert_eq!(tokens.follow(5, Some("a")), Err(PaginationLoop::RepeatedToken { page: 3 }));
        let mut resumed = PageTokens::new(Some("saved"));
        assert_eq!(resumed.follow(5, Some("saved")), Err(PaginationLoop::RepeatedToken { page: 1 }));
        assert_eq!(PageTokens::new(None).follow(5, None), Ok(()), "the last page");
    }

    #[test]
    fn empty_pages_with_new_tokens_are_a_loop_after_a_few() {
        let mut tokens = PageTokens::new(None);
        assert_eq!(tokens.follow(3, Some("t0")), Ok(()));
        for n in 1..=MAX_EMPTY_PAGES {
            assert_eq!(tokens.follow(0, Some(&format!("t{n}"))), Ok(()), "empty page {n}");
        }
        let err = tokens.follow(0, Some("more"));
        assert_eq!(err, Err(PaginationLoop::EmptyPages { first: 2, page: MAX_EMPTY_PAGES + 2 }));
        // A page with items in between starts the count again.
        let mut tokens = PageTokens::new(None);
        for n in 0..3 * MAX_EMPTY_PAGES {
            let items = usize::from(n % MAX_EMPTY_PAGES == 0);
            assert_eq!(tokens.follow(items, Some(&format!("t{n}"))), Ok(()));
        }
    }

    #[test]
    fn the_pages_of_a_window_are_bounded() {
        let mut tokens = PageTokens::new(None);
        for n in 0..MAX_PAGES_PER_WINDOW {
            assert_eq!(tokens.follow(1, Some(&n.to_string())), Ok(()));
        }
        assert_eq!(tokens.follow(1, Some("one more")), Err(PaginationLoop::TooManyPages));
    }
}
