//! Graceful shutdown: SIGTERM or SIGINT flips one watch channel; every role stops taking new
//! messages, finishes and acknowledges what it holds, and returns.

use tokio::sync::watch;

/// A cloneable shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side, kept by `main` (and by `run --once`, which stops its own workers).
#[derive(Clone)]
pub struct Trigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (
        Trigger {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx },
    )
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }

    /// Fire on the first SIGTERM or SIGINT.
    pub fn on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: finishing in-flight work");
            this.fire();
        });
    }
}

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown was requested.
    pub async fn wait(&mut self) {
        while !*self.rx.borrow_and_update() {
            if self.rx.changed().await.is_err() {
                // The trigger is gone: nobody can ask to stop any more, so this never resolves.
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
