//! A real browser for the console's tests: Debian's `chromium`, headless, driven through its
//! `chromedriver` with fantoccini. Each test starts its own driver on a free port.
//!
//! `scripts/test` installs both packages when they are missing. Set `CONSOLE_SCREENSHOTS` to a
//! folder (e.g. `docs/console`) to write the screenshots the tests take there.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// A browser window, and the driver behind it; both killed on drop, even when a test fails.
pub(crate) struct Browser {
    pub(crate) client: Client,
    driver: Child,
    /// The browser's own profile folder: what tells its processes apart from others'.
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A killed chromedriver leaves its chromium behind: end every process of this profile.
        let _ = std::process::Command::new("pkill")
            .arg("-f")
            .arg(self.profile.as_os_str())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// A headless chromium window of `width` × `height` CSS pixels.
    pub(crate) async fn start(width: u32, height: u32) -> Self {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {driver_path} ({e}): install Debian's chromium and \
                     chromium-driver (scripts/test does when they are missing)"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = std::env::temp_dir().join(format!(
            "commerce-console-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let caps: serde_json::Map<String, Value> = json!({
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.display()),
                         format!("--window-size={width},{height}")],
            }
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(client) => break client,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        Self {
            client,
            driver,
            profile,
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub(crate) async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
    }

    /// An attribute of the element `css` selects, read in one step (the page replaces parts of
    /// itself every second, so an element found first may be gone a moment later).
    pub(crate) async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await;
        let value = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); \
                 return e ? e.getAttribute(arguments[1]) : null;",
                vec![json!(css), json!(name)],
            )
            .await
            .expect("attribute");
        value.as_str().map(str::to_owned)
    }

    /// The text of the element `css` selects, read in one step.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await;
        let value = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
                vec![json!(css)],
            )
            .await
            .expect("text");
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` in the page (WebDriver's script execution is not subject to the page's
    /// content security policy).
    pub(crate) async fn run(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("script runs")
    }

    /// Waits (at most `seconds`) until `check` holds for the page, polling every 100 ms.
    pub(crate) async fn until<F, Fut>(&self, what: &str, seconds: u64, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in through the console's form.
    pub(crate) async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/console/")).await;
        self.find("#email")
            .await
            .send_keys(email)
            .await
            .expect("email");
        self.find("#password")
            .await
            .send_keys(password)
            .await
            .expect("password");
        self.find("#sign-in").await.click().await.expect("submit");
        self.find("#viewer").await;
    }

    /// Writes a screenshot of the page as `name.png` when `CONSOLE_SCREENSHOTS` is set.
    pub(crate) async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") else {
            return;
        };
        // Let the self-refreshing parts settle and the fonts render.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        std::fs::create_dir_all(path.parent().unwrap_or(&PathBuf::from("."))).expect("folder");
        std::fs::write(&path, png).expect("screenshot written");
    }

    pub(crate) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
