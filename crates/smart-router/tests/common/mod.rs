//! The binary as a test runs it: `serve` in its own temporary directory, JSON logs to a file,
//! blocking HTTP/1.1 against it, SIGTERM or kill at the end.
#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// The `smart-router` binary under test.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smart-router"))
}

/// A fresh temporary directory named after the test and this process.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sr-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `[store]` section keeping usage in SQLite inside `dir`, plus `extra` lines.
pub(crate) fn sqlite_store(dir: &Path, extra: &str) -> String {
    format!(
        "[store]\nurl = \"sqlite://{}\"\nspool_path = \"{}\"\n{extra}\n",
        dir.join("usage.db").display(),
        dir.join("usage.spool").display()
    )
}

/// A running `smart-router serve`; killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// `IP:PORT` it listens on.
    pub addr: String,
    /// Its temporary directory (config, store, log).
    pub dir: PathBuf,
    log: PathBuf,
}

impl Served {
    /// Writes `config(dir)` and starts `serve` on it with JSON logs; returns once it listens.
    pub(crate) fn start(name: &str, config: impl FnOnce(&Path) -> String) -> Served {
        Self::start_limited(name, None, config)
    }

    /// Like [`Served::start`], with the process's open-file limit set to `nofile` (through the
    /// shell's `ulimit`, before the binary starts).
    pub(crate) fn start_limited(
        name: &str,
        nofile: Option<u64>,
        config: impl FnOnce(&Path) -> String,
    ) -> Served {
        Self::try_start(name, nofile, config)
            .unwrap_or_else(|(code, logs)| panic!("serve did not start ({code:?}): {logs}"))
    }

    /// Like [`Served::start_limited`], but a process that exits instead of listening is an
    /// `Err` with its exit code and everything it wrote to stderr.
    pub(crate) fn try_start(
        name: &str,
        nofile: Option<u64>,
        config: impl FnOnce(&Path) -> String,
    ) -> Result<Served, (Option<i32>, String)> {
        let dir = temp_dir(name);
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, config(&dir)).unwrap();
        let log = dir.join("log.jsonl");
        let mut cmd = match nofile {
            None => bin(),
            Some(n) => {
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_smart-router"));
                c
            }
        };
        let mut child = cmd
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&cfg)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line
            .trim()
            .strip_prefix("smart-router listening on http://")
            .map(str::to_string)
        else {
            let code = child.wait().unwrap().code();
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            return Err((code, logs));
        };
        Ok(Served {
            child,
            addr,
            dir,
            log,
        })
    }

    /// Sends SIGHUP (reload the config).
    pub(crate) fn hup(&self) {
        let sent = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Kills the process (SIGKILL: no shutdown, no deregistration) and waits for it.
    pub(crate) fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Everything logged so far.
    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// The log once a line containing all of `needles` has been written (log lines are
    /// written by a background thread, shortly after the event), or as it is after 2 s.
    pub(crate) fn logs_with(&self, needles: &[&str]) -> String {
        for _ in 0..200 {
            let logs = self.logs();
            if logs.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
                return logs;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.logs()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn sigterm(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP/1.1 response read to the end.
pub(crate) struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Resp {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One blocking request on its own connection (`connection: close`).
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Resp {
        status: head[9..12].parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A non-stream chat request for `group` with `token`.
pub(crate) fn chat(addr: &str, token: &str, group: &str, extra_headers: &[(&str, &str)]) -> Resp {
    let body = format!(r#"{{"model":"{group}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra_headers);
    request(addr, "POST", "/v1/chat/completions", &headers, &body)
}
