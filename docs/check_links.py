#!/usr/bin/env python3
"""Checks every internal link of the built docs site and of the README.

usage: check_links.py BOOK_DIR REPO_ROOT

- In every page mdBook rendered (BOOK_DIR/**/*.html, but not print.html, which repeats
  them all), a relative link must name a file that exists and, with a fragment, an element
  id in that file. A link still ending in ".md" is one mdBook could not resolve.
- In README.md, a relative link must name a file of the repository; one into docs/src/
  with a fragment must find that id in the page mdBook made of it; "#x" must be a heading
  of the README.
Exits 1 listing every broken link.
"""
import html.parser
import pathlib
import re
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name == "href" and value and tag == "a":
                self.links.append(value)


def parse(path, cache={}):
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def external(target):
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//")


def heading_id(text):
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return "".join(c.lower() if (c.isalnum() or c in "_-") else "-" if c.isspace() else "" for c in text)


def check_book(book):
    broken = []
    pages = [p for p in book.rglob("*.html") if p.name not in ("print.html", "toc.html")]
    for page in pages:
        for href in parse(page).links:
            if external(href):
                continue
            path, _, fragment = href.partition("#")
            target = (page.parent / urllib.parse.unquote(path)).resolve() if path else page
            if path.endswith(".md"):
                broken.append(f"{page.relative_to(book)}: {href} (a .md link mdBook did not resolve)")
            elif not target.is_file():
                broken.append(f"{page.relative_to(book)}: {href} (no such page)")
            elif fragment and target.suffix == ".html" and fragment not in parse(target).ids:
                broken.append(f"{page.relative_to(book)}: {href} (no such anchor)")
    return broken, len(pages)


def check_readme(root, book):
    broken = []
    text = (root / "README.md").read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    headings = {heading_id(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if external(target):
            continue
        path, _, fragment = target.partition("#")
        if not path:
            if fragment not in headings:
                broken.append(f"README.md: {target} (no such heading)")
            continue
        file = root / path
        if not file.exists():
            broken.append(f"README.md: {target} (no such file)")
            continue
        if fragment:
            rel = file.resolve().relative_to((root / "docs" / "src").resolve())
            page = book / rel.with_suffix(".html")
            if not page.is_file() or fragment not in parse(page).ids:
                broken.append(f"README.md: {target} (no such anchor)")
    return broken


def main():
    book, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    broken, pages = check_book(book)
    broken += check_readme(root, book)
    for line in broken:
        print(f"broken link: {line}")
    if broken:
        sys.exit(1)
    print(f"links: {pages} pages and README.md, every internal link resolves")


if __name__ == "__main__":
    main()
