//! What the tests need besides Rust, found or installed on first use, so that
//! `cargo test --workspace` is the whole set-up on a new machine:
//!
//! - the emulators and Python tools, installed by `localstack/install.sh` into
//!   `~/.cache/activity-history/` (once per machine; it takes a lock, so parallel
//!   test processes wait for one install);
//! - a Chromium or Chrome for the page tests: `CHROME` or `CHROMIUM`, then the usual
//!   program names and macOS application paths; when there is none and the tests run
//!   as root with apt, Debian's `chromium` is installed, otherwise the failure names
//!   the command that installs one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the emulators and tools live, as `localstack/env.sh` says (the one place
/// their versions are written).
#[derive(Debug, Clone)]
pub struct Installed {
    /// DynamoDB Local's folder (`DynamoDBLocal.jar`, `DynamoDBLocal_lib/`).
    pub dynamodb_local: PathBuf,
    /// The moto server program.
    pub moto_server: PathBuf,
    /// The folder of the Python tools' virtualenv (`bin/openapi-spec-validator`, ...).
    pub tools: PathBuf,
    /// The Python of the virtualenv that has playwright.
    pub browser_python: PathBuf,
    /// axe-core's `axe.min.js`.
    pub axe: PathBuf,
}

/// Runs `localstack/install.sh` once per test process and says where things are.
pub fn installed() -> Result<&'static Installed> {
    static INSTALLED: OnceLock<Result<Installed, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

fn install() -> Result<Installed> {
    let script = repo_root().join("localstack/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        // Some tools (python3 -m venv) say what to install on stdout.
        bail!(
            "{} failed:\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Installed {
        dynamodb_local: env_sh("DDB_DIR")?,
        moto_server: env_sh("MOTO_VENV")?.join("bin/moto_server"),
        tools: env_sh("TOOLS_VENV")?,
        browser_python: env_sh("BROWSER_VENV")?.join("bin/python"),
        axe: env_sh("AXE_JS")?,
    })
}

/// The Python that has playwright, and axe-core's script, for the viewer's tests.
pub fn browser_tools() -> Result<(PathBuf, PathBuf)> {
    let i = installed()?;
    Ok((i.browser_python.clone(), i.axe.clone()))
}

/// A variable of `localstack/env.sh`, evaluated by bash as the scripts see it.
fn env_sh(name: &str) -> Result<PathBuf> {
    let env = repo_root().join("localstack/env.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source \"$1\" && printf '%s' \"${name}\""))
        .arg("env.sh")
        .arg(&env)
        .output()
        .context("running bash")?;
    let value = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || value.is_empty() {
        bail!("{name} is not set by {}", env.display());
    }
    Ok(PathBuf::from(value))
}

/// The `openapi-spec-validator` program.
pub fn openapi_validator() -> Result<PathBuf> {
    Ok(installed()?.tools.join("bin/openapi-spec-validator"))
}

/// Program names a browser goes by on Linux, in the order they are tried.
const BROWSER_NAMES: [&str; 5] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
];
/// Where macOS keeps them.
const MACOS_BROWSERS: [&str; 2] = [
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
];

/// How to get a browser, for the message when none is found or installed.
const HOW: &str = "install one (Debian: `sudo apt-get install -y chromium`; Ubuntu: \
    `sudo snap install chromium`; macOS: `brew install --cask chromium`) or name it \
    with CHROME=/path/to/chrome";

/// A headless-capable Chromium or Chrome, found or (as root with apt) installed.
pub fn browser() -> Result<PathBuf> {
    static BROWSER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BROWSER
        .get_or_init(|| {
            let found = named_browser()
                .transpose()
                .or_else(|| find_browser().map(Ok));
            found
                .unwrap_or_else(install_browser)
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("{e}"))
}

/// The browser `CHROME` or `CHROMIUM` names; a name that is not a file is an
/// error, not a reason to look elsewhere.
fn named_browser() -> Result<Option<PathBuf>> {
    let Some((var, value)) = ["CHROME", "CHROMIUM"].iter().find_map(|v| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(|s| (v, s))
    }) else {
        return Ok(None);
    };
    let path = PathBuf::from(value);
    if !path.is_file() {
        bail!("{var}={} is not a file; {HOW}", path.display());
    }
    Ok(Some(path))
}

fn find_browser() -> Option<PathBuf> {
    let on_path = BROWSER_NAMES.iter().filter_map(|n| on_path(n));
    let mac = MACOS_BROWSERS.iter().map(PathBuf::from);
    on_path.chain(mac).find(|p| p.is_file())
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn install_browser() -> Result<PathBuf> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let Some(apt) = on_path("apt-get").filter(|_| root) else {
        bail!("no Chromium or Chrome found for the page tests: {HOW}");
    };
    eprintln!("no Chromium or Chrome found: installing Debian's chromium with apt-get");
    let installed = apt_get(&apt, &["update", "-qq"])
        .and_then(|()| apt_get(&apt, &["install", "-y", "-qq", "chromium"]));
    installed.with_context(|| format!("installing chromium failed; {HOW}"))?;
    find_browser()
        .with_context(|| format!("apt-get installed chromium but it is not on PATH: {HOW}"))
}

fn apt_get(apt: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(apt)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .context("running apt-get")?;
    if !out.status.success() {
        bail!(
            "apt-get {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
