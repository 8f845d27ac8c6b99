//! node-oidc-provider 9, the peer the token benchmark compares against:
//! installed from npm into a temporary directory and started with one
//! client-credentials client equivalent to Writ's.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CLIENT_ID: &str = "bench";
pub const CLIENT_SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuv";

const SERVER: &str = r#"
import Provider from 'oidc-provider';
const port = Number(process.argv[2]);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'CLIENT_ID',
    client_secret: 'CLIENT_SECRET',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'read',
  }],
  scopes: ['read'],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  ttl: { ClientCredentials: 3600 },
});
provider.listen(port, '127.0.0.1', () => console.log(`node-oidc-provider listening on ${port}`));
"#;

pub struct NodeOidc {
    child: Child,
    pub base: String,
    pub version: String,
}

/// `npm install oidc-provider@9` into `dir` (skipped when already there).
pub fn install(dir: &Path) -> Result<String, String> {
    let installed = dir.join("node_modules/oidc-provider/package.json");
    if !installed.exists() {
        std::fs::write(
            dir.join("package.json"),
            r#"{"type": "module", "private": true}"#,
        )
        .map_err(|e| e.to_string())?;
        let status = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "oidc-provider@9",
            ])
            .current_dir(dir)
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err("npm install oidc-provider@9 failed".into());
        }
    }
    let package = std::fs::read_to_string(&installed).map_err(|e| e.to_string())?;
    let version = serde_json::from_str::<serde_json::Value>(&package)
        .ok()
        .and_then(|p| p["version"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(version)
}

impl NodeOidc {
    pub fn start(dir: &Path, port: u16) -> Result<Self, String> {
        let version = install(dir)?;
        let script = SERVER
            .replace("CLIENT_ID", CLIENT_ID)
            .replace("CLIENT_SECRET", CLIENT_SECRET);
        std::fs::write(dir.join("server.mjs"), script).map_err(|e| e.to_string())?;
        let mut child = Command::new("node")
            .args(["server.mjs", &port.to_string()])
            .current_dir(dir)
            // Compared as it comes, as Writ is: NODE_ENV is a deployment choice.
            .env_remove("NODE_ENV")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("node: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "node-oidc-provider did not start".to_owned())?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            version,
        })
    }
}

impl Drop for NodeOidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
