//! A stdio server's launch as the snapshot holds it: its settings, and its environment
//! opened from the keyring once per rebuild, not per start of its program.

use std::{fmt, sync::Arc};

use crate::secrets::Keyring;
use gatehouse_model::records::{ServerRecord, StdioSettings, valid_env_name};

/// What a stdio server runs, ready to start. Two launches are equal when every setting and
/// every environment value is: a changed record replaces the running program.
#[derive(Clone, PartialEq, Eq)]
pub struct StdioLaunch {
    /// The stored settings (their sealed environment left out).
    pub settings: StdioSettings,
    /// The environment, opened.
    pub env: Vec<(String, String)>,
}

impl fmt::Debug for StdioLaunch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The values are credentials: only their names are shown.
        f.debug_struct("StdioLaunch")
            .field("settings", &self.settings)
            .field("env", &self.settings.env_names)
            .finish()
    }
}

/// The key-derivation context of a stdio server's sealed environment.
pub fn env_context(server: &str) -> String {
    format!("server-stdio-env:{server}")
}

/// A server row's stdio launch (`None` for an HTTP server), its environment opened.
pub fn compile_stdio(
    server: &ServerRecord,
    keyring: &Keyring,
) -> Result<Option<Arc<StdioLaunch>>, String> {
    let Some(stored) = &server.stdio else {
        return Ok(None);
    };
    if stored.command.is_empty() {
        return Err("stdio: no command".into());
    }
    let env: Vec<(String, String)> = match &stored.env_sealed {
        None => Vec::new(),
        Some(sealed) => {
            let opened = keyring
                .decrypt(sealed, &env_context(&server.name))
                .map_err(|e| format!("stdio environment: {e}"))?;
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&opened).map_err(|e| format!("stdio environment: {e}"))?;
            map.into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::String(value) if valid_env_name(&name) => Ok((name, value)),
                    _ => Err(format!("stdio environment: variable {name:?} is not valid")),
                })
                .collect::<Result<_, _>>()?
        }
    };
    let mut settings = stored.clone();
    settings.env_sealed = None;
    Ok(Some(Arc::new(StdioLaunch { settings, env })))
}
