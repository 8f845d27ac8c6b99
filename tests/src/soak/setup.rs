//! The deployment under soak: a private PostgreSQL cluster (the soak
//! restarts it), a broker on durable storage (the soak stops it), one
//! command API, two query APIs on fixed ports (a load balancer's view) and
//! two projectors, active and standby; then the clients and people.

use std::path::Path;

use writ_testing::PrivateCluster;

use crate::broker::Broker;
use crate::writ_process::{free_port, Deployment, Registered, Server};

pub const ISSUER: &str = "http://soak.writ.test";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
pub const PASSWORD: &str = "correct horse battery";
/// People who sign in, refresh and use a device; others withdraw consent,
/// so that no flow's tokens die under another's feet.
pub const PEOPLE: usize = 100;
pub const WITHDRAWERS: usize = 40;

pub type Failure = Box<dyn std::error::Error>;

/// The clients the traffic uses. Every token names `resource` in its
/// audience, so the resource server may introspect all of them and its
/// revocation feed carries every revocation.
#[derive(Debug, Clone)]
pub struct Clients {
    pub resource: Registered,
    pub downstream: Registered,
    pub service: Registered,
    pub app: Registered,
    pub device: Registered,
    pub receiver: Registered,
}

pub struct Soak {
    pub cluster: PrivateCluster,
    pub broker: Broker,
    pub deployment: Deployment,
    pub command: Option<Server>,
    pub queries: [Option<Server>; 2],
    pub query_ports: [u16; 2],
    pub command_port: u16,
    /// Running projectors with their role names.
    pub projectors: Vec<(String, Server)>,
    pub clients: Clients,
    started: usize,
    _dir: tempfile::TempDir,
}

pub fn person(index: usize) -> String {
    format!("person{index}")
}

pub fn withdrawer(index: usize) -> String {
    format!("withdrawer{index}")
}

fn create_person(deployment: &Deployment, username: &str) -> Result<(), Failure> {
    let email = format!("{username}@example.com");
    Ok(deployment.create_user(username, PASSWORD, &["--email", &email])?)
}

fn register(deployment: &Deployment) -> Result<Clients, Failure> {
    let resource = deployment.create_client(&[
        "--name",
        "Orders",
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "token_exchange",
        "--scope",
        "read write",
        "--revocation-feed",
    ])?;
    let aud = resource.id.clone();
    let downstream = deployment.create_client(&[
        "--name",
        "Billing",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
    ])?;
    let service = deployment.create_client(&[
        "--name",
        "Batch",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        "--audience",
        &aud,
        "--access-token-ttl",
        "2h",
    ])?;
    let app = deployment.create_client(&[
        "--name",
        "Shop",
        "--redirect-uri",
        REDIRECT_URI,
        "--scope",
        "openid offline_access read",
        "--audience",
        &aud,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
    ])?;
    let device = deployment.create_client(&[
        "--name",
        "Living Room TV",
        "--public",
        "--grant-type",
        "device_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid offline_access read",
        "--audience",
        &aud,
    ])?;
    let receiver = deployment.create_client(&[
        "--name",
        "Signals",
        "--grant-type",
        "client_credentials",
        "--scope",
        "ssf.manage",
    ])?;
    Ok(Clients {
        resource,
        downstream,
        service,
        app,
        device,
        receiver,
    })
}

impl Soak {
    /// Everything up and registered; `binary` is the release `writ`.
    pub async fn start(binary: &Path) -> Result<Self, Failure> {
        let cluster = PrivateCluster::create("soak")?;
        let created = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "createdb", "-p"])
            .arg(cluster.port.to_string())
            .args(["-O", "writ", "soak"])
            .current_dir("/")
            .status()?;
        if !created.success() {
            return Err("createdb soak failed".into());
        }
        let broker = Broker::durable()?;
        let dir = tempfile::tempdir()?;
        let deployment = Deployment {
            binary: binary.to_owned(),
            data_dir: dir.path().to_owned(),
            database_url: Some(cluster.url("soak")),
        };
        deployment.run(&["keys", "init"])?;
        deployment.run(&["migrate"])?;
        let clients = register(&deployment)?;
        for index in 0..PEOPLE {
            create_person(&deployment, &person(index))?;
        }
        for index in 0..WITHDRAWERS {
            create_person(&deployment, &withdrawer(index))?;
        }
        let mut soak = Self {
            cluster,
            broker,
            deployment,
            command: None,
            queries: [None, None],
            query_ports: [free_port()?, free_port()?],
            command_port: free_port()?,
            projectors: Vec::new(),
            clients,
            started: 0,
            _dir: dir,
        };
        soak.start_command()?;
        soak.start_query(0)?;
        soak.start_query(1)?;
        soak.start_projector()?;
        soak.start_projector()?;
        Ok(soak)
    }

    fn start_process(&mut self, kind: &str, port: u16, extra: &[&str]) -> Result<Server, Failure> {
        self.started += 1;
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![kind, "--listen", &listen, "--issuer", ISSUER];
        args.extend_from_slice(extra);
        let log = format!("{kind}-{}", self.started);
        Ok(self.deployment.start_logged(&log, &args)?)
    }

    pub fn start_command(&mut self) -> Result<(), Failure> {
        // The soak stands in for the load balancer, naming each device's
        // own address.
        let server = self.start_process(
            "command-api",
            self.command_port,
            &["--trusted-proxy", "127.0.0.1"],
        )?;
        self.command = Some(server);
        Ok(())
    }

    pub fn start_query(&mut self, index: usize) -> Result<(), Failure> {
        let server = self.start_process("query-api", self.query_ports[index], &[])?;
        self.queries[index] = Some(server);
        Ok(())
    }

    /// A projector; the first one up takes the lead, the next stands by.
    pub fn start_projector(&mut self) -> Result<(), Failure> {
        let brokers = self.broker.brokers();
        let server = self.start_process("projector", 0, &["--kafka-brokers", &brokers])?;
        let role = format!("projector-{}", self.started);
        self.projectors.push((role, server));
        Ok(())
    }

    pub fn command_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.command_port)
    }

    pub fn query_urls(&self) -> [String; 2] {
        self.query_ports
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// Each running process's pid, by role.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut pids = Vec::new();
        if let Some(server) = &self.command {
            pids.push(("command-api".to_owned(), server.pid()));
        }
        for (index, server) in self.queries.iter().enumerate() {
            if let Some(server) = server {
                pids.push((format!("query-api-{}", ["a", "b"][index]), server.pid()));
            }
        }
        for (role, server) in &self.projectors {
            pids.push((role.clone(), server.pid()));
        }
        pids
    }

    pub fn projector_bases(&self) -> Vec<String> {
        self.projectors
            .iter()
            .map(|(_, server)| server.base.clone())
            .collect()
    }

    /// SIGTERM to every process, each waited for.
    pub fn stop_processes(&mut self) {
        for server in self
            .command
            .take()
            .into_iter()
            .chain(self.queries.iter_mut().filter_map(Option::take))
            .chain(self.projectors.drain(..).map(|(_, server)| server))
        {
            server.stop();
        }
    }
}
