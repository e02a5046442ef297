//! Apache Kafka as the test broker: one combined KRaft node (broker and controller) on two
//! free ports, its log in a temporary folder, resolved by `scripts/install-kafka`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where `scripts/install-kafka` put the broker (it installs it when missing, once per test
/// process, and answers at once when it is there).
pub fn home() -> &'static Path {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        if let Some(home) = std::env::var_os("PAYBRIDGE_KAFKA_HOME").map(PathBuf::from)
            && home.join("log4j2.properties").exists()
        {
            return home;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-kafka");
        let out = std::process::Command::new(&script)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/install-kafka failed (the tests run on Apache Kafka; PAYBRIDGE_TEST_BROKER=tansu runs them on tansu):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A node's ports: the client listener, the one it tells clients to use (a proxy's, or its
/// own), and the controller's.
#[derive(Clone, Copy)]
pub struct Ports {
    pub own: u16,
    pub advertised: u16,
    pub controller: u16,
}

/// The server.properties of a node. KIP-848 groups (`cluster.group_protocol = "consumer"`)
/// get the broker's session timeout: 6 s here, like the tests' classic groups (Kafka's
/// default is 45 s). `sasl` = Some((user, password)) makes the client
/// listener SASL_PLAINTEXT with SCRAM-SHA-512 (the user must exist: [`add_scram_user`]).
pub fn server_properties(data: &Path, ports: Ports, sasl: Option<(&str, &str)>) -> String {
    let Ports { own: port, advertised, controller: controller_port } = ports;
    let (protocol, sasl_lines) = match sasl {
        None => ("PLAINTEXT", String::new()),
        Some((user, password)) => (
            "SASL_PLAINTEXT",
            format!(
                "sasl.enabled.mechanisms=SCRAM-SHA-512\nsasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n\
                 listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.\
                 ScramLoginModule required username=\"{user}\" password=\"{password}\";\n"
            ),
        ),
    };
    format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller_port}\n\
         listeners=CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
         advertised.listeners=CLIENT://127.0.0.1:{advertised}\n\
         listener.security.protocol.map=CLIENT:{protocol},CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=CLIENT\n\
         controller.listener.names=CONTROLLER\n\
         {sasl_lines}\
         log.dirs={data}\n\
         num.partitions=1\n\
         auto.create.topics.enable=false\n\
         offsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=5\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         transaction.state.log.num.partitions=5\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         group.min.session.timeout.ms=1000\n\
         group.consumer.min.session.timeout.ms=1000\n\
         group.consumer.min.heartbeat.interval.ms=500\n\
         group.consumer.session.timeout.ms=6000\n\
         group.consumer.heartbeat.interval.ms=1000\n",
        data = data.display(),
    )
}

/// The ports of a secured node: PLAINTEXT for the test's own admin calls (its principal,
/// `User:ANONYMOUS`, is a super user), SASL_SSL with SCRAM-SHA-512, SSL with a client
/// certificate required (mTLS), and the controller's.
#[derive(Clone, Copy)]
pub struct SecuredPorts {
    pub admin: u16,
    pub sasl_ssl: u16,
    pub mtls: u16,
    pub controller: u16,
}

/// How long a SCRAM session on the secured node lasts before the client must authenticate
/// again (KIP-368): a rotated password is then used, or the connection closed.
pub const SCRAM_REAUTH: std::time::Duration = std::time::Duration::from_secs(5);

/// The server.properties of a node secured the way production runs it: TLS with `certs`,
/// SCRAM-SHA-512 and OAUTHBEARER over it (tokens verified against the sandbox IdP's JWKS by
/// `BrokerJwtValidator`, which Kafka 4.1 uses only when named: its default validator checks
/// no signature), client certificates on the mTLS listener, and
/// `StandardAuthorizer` denying whatever no ACL allows.
pub fn secured_server_properties(data: &Path, ports: SecuredPorts, certs: &super::certs::Certificates) -> String {
    let SecuredPorts { admin, sasl_ssl, mtls, controller } = ports;
    let single = server_properties(data, Ports { own: admin, advertised: admin, controller }, None);
    let listeners = format!(
        "listeners=CLIENT://127.0.0.1:{admin},SECURE://127.0.0.1:{sasl_ssl},MTLS://127.0.0.1:{mtls},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners=CLIENT://127.0.0.1:{admin},SECURE://127.0.0.1:{sasl_ssl},MTLS://127.0.0.1:{mtls}\n\
         listener.security.protocol.map=CLIENT:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT\n"
    );
    let mut text: String = single
        .lines()
        .filter(|l| {
            !l.starts_with("listeners=")
                && !l.starts_with("advertised.listeners=")
                && !l.starts_with("listener.security")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&listeners);
    text.push_str(&format!(
        "sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER\n\
         listener.name.secure.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
         listener.name.secure.scram-sha-512.connections.max.reauth.ms={reauth_ms}\n\
         listener.name.secure.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;\n\
         listener.name.secure.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler\n\
         sasl.oauthbearer.jwt.validator.class=org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator\n\
         sasl.oauthbearer.jwks.endpoint.url={jwks}\n\
         sasl.oauthbearer.expected.audience={audience}\n\
         sasl.oauthbearer.expected.issuer={issuer}\n\
         ssl.keystore.type=PKCS12\n\
         ssl.keystore.location={keystore}\n\
         ssl.keystore.password={password}\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={ca}\n\
         listener.name.mtls.ssl.client.auth=required\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
         allow.everyone.if.no.acl.found=false\n\
         super.users=User:ANONYMOUS\n",
        keystore = certs.broker_keystore.display(),
        password = super::certs::KEYSTORE_PASSWORD,
        ca = certs.ca.display(),
        jwks = super::idp::jwks_url(),
        reauth_ms = SCRAM_REAUTH.as_millis(),
        audience = super::idp::OIDC_AUDIENCE,
        issuer = super::idp::OIDC_ISSUER,
    ));
    text
}

/// The JVM's arguments for `main_class args`: the broker's class path and logging.
pub fn java_args(main_class: &str, args: &[&str]) -> Vec<String> {
    let home = home();
    let mut all = vec![
        "-Xms256m".to_owned(),
        "-Xmx512m".to_owned(),
        "-XX:+UseG1GC".to_owned(),
        "-XX:-UsePerfData".to_owned(),
        "-Djava.awt.headless=true".to_owned(),
        format!("-Dlog4j2.configurationFile={}", home.join("log4j2.properties").display()),
        "-cp".to_owned(),
        format!("{}/*", home.join("libs").display()),
        main_class.to_owned(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all
}

/// Formats a fresh node's storage (`kafka.tools.StorageTool format`), with SCRAM-SHA-512
/// credentials for `users` (name, password).
pub fn format(dir: &Path, properties: &Path, users: &[(&str, &str)]) {
    let properties = properties.to_string_lossy();
    let mut args = vec!["format".to_owned(), "-t".into(), CLUSTER_ID.into(), "-c".into(), properties.into_owned()];
    for (name, password) in users {
        args.push("--add-scram".into());
        args.push(format!("SCRAM-SHA-512=[name={name},password={password}]"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_java(dir, &java_args("kafka.tools.StorageTool", &args), "format the broker's storage");
}

/// Adds (`add`) or removes ACLs with Apache Kafka's own tool (kafka-acls.sh), over the
/// admin listener at `bootstrap`: `args` are the tool's principal, operation and resource
/// flags.
pub fn acls(dir: &Path, bootstrap: &str, add: bool, args: &[&str]) {
    let mut all = vec!["--bootstrap-server", bootstrap, if add { "--add" } else { "--remove" }];
    if !add {
        all.push("--force");
    }
    all.extend_from_slice(args);
    run_java(dir, &java_args("org.apache.kafka.tools.AclCommand", &all), "change ACLs");
}

/// Adds (or replaces) a SCRAM-SHA-512 user on the running broker at `bootstrap`.
pub fn add_scram_user(dir: &Path, bootstrap: &str, name: &str, password: &str) {
    let config = format!("SCRAM-SHA-512=[iterations=4096,password={password}]");
    let args = java_args(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--add-config",
            &config,
            "--entity-type",
            "users",
            "--entity-name",
            name,
        ],
    );
    run_java(dir, &args, "add a SCRAM user");
}

/// Any valid cluster id (base64 of 16 bytes); every node is a cluster of its own.
const CLUSTER_ID: &str = "cGF5YnJpZGdlLXRlc3RzMQ";

/// Runs one of Kafka's own tools against `bootstrap` and returns what it printed.
pub fn tool(dir: &Path, main_class: &str, args: &[&str], what: &str) -> String {
    run_java(dir, &java_args(main_class, args), what)
}

fn run_java(dir: &Path, args: &[String], what: &str) -> String {
    use super::super::child::OutputWithin;
    let out = std::process::Command::new("java")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output_within(std::time::Duration::from_secs(120));
    assert!(
        out.status.success(),
        "could not {what}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
