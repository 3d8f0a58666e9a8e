//! Loading and validating configuration.

// figment::Jail fixes the closure's error type; its size is not ours to choose.
#![allow(clippy::result_large_err)]

use super::*;

#[test]
fn defaults_validate() {
    Config::default().validate().unwrap();
}

#[test]
fn rejects_bad_public_url() {
    let config = Config {
        public_url: "ftp://x".into(),
        ..Config::default()
    };
    assert!(
        config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("public_url")
    );
}

#[test]
fn toml_and_env_layering() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            "public_url = \"https://mcp.example.com/\"\n[gateway]\nupstream_timeout = \"5s\"\n",
        )?;
        jail.set_env("GATEHOUSE_GATEWAY__MAX_BODY_BYTES", "1024");
        jail.set_env("GATEHOUSE_BIN", "/some/tool/of/a/script");
        jail.set_env("GATEHOUSE_MASTER_KEY", "00");
        let config = Config::load(Some(std::path::Path::new("g.toml"))).unwrap();
        assert_eq!(config.public_base(), "https://mcp.example.com");
        assert_eq!(config.gateway.upstream_timeout, Duration::from_secs(5));
        assert_eq!(config.gateway.max_body_bytes, 1024);
        Ok(())
    });
}

#[test]
fn the_pool_size_comes_from_the_environment_and_is_checked() {
    figment::Jail::expect_with(|jail| {
        assert_eq!(Config::load(None).unwrap().database_max_connections, 10);
        jail.set_env("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "32");
        assert_eq!(Config::load(None).unwrap().database_max_connections, 32);
        jail.set_env("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "0");
        let err = Config::load(None).unwrap_err();
        assert!(
            err.to_string().contains("database_max_connections"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn redis_comes_from_the_environment() {
    // Replicas started with GATEHOUSE_REDIS__URL alone ran on per-process state.
    figment::Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_REDIS__URL", "redis://127.0.0.1:6390");
        jail.set_env("GATEHOUSE_REDIS__KEY_PREFIX", "gh-test:");
        let redis = Config::load(None)
            .unwrap()
            .redis
            .expect("[redis] from the environment");
        assert_eq!(redis.url.as_deref(), Some("redis://127.0.0.1:6390"));
        Ok(())
    });
}

#[test]
fn every_section_can_be_set_from_the_environment() {
    let value = serde_json::to_value(Config::default()).unwrap();
    for key in value.as_object().unwrap().keys() {
        assert!(
            ENV_KEYS.contains(&key.as_str()),
            "GATEHOUSE_{} is ignored: add {key:?} to ENV_KEYS",
            key.to_ascii_uppercase()
        );
    }
}

#[test]
fn replica_id_comes_from_the_environment_and_is_checked() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("GATEHOUSE_REPLICA_ID", "gw-2");
        let config = Config::load(None).unwrap();
        assert_eq!(config.replica_id.as_deref(), Some("gw-2"));
        jail.set_env("GATEHOUSE_REPLICA_ID", "gw 2");
        let err = Config::load(None).unwrap_err();
        assert!(err.to_string().contains("replica_id"), "{err}");
        Ok(())
    });
}

#[test]
fn a_zero_poll_or_flush_interval_is_refused() {
    // A zero period would stop the reload loop at start: changes never applied, and no
    // heartbeat for the CLI to wait on.
    for zero in ["poll_interval", "usage_flush_interval"] {
        figment::Jail::expect_with(|jail| {
            jail.create_file("g.toml", &format!("[snapshot]\n{zero} = \"0s\"\n"))?;
            let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
            assert!(
                err.to_string().contains("must be positive"),
                "{zero}: {err}"
            );
            Ok(())
        });
    }
}

#[test]
fn a_registration_mode_is_off_open_or_token() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("g.toml", "[oauth]\nregistration = \"open\"\n")?;
        let config = Config::load(Some(std::path::Path::new("g.toml"))).unwrap();
        assert_eq!(
            config.oauth.registration,
            gatehouse_model::registration_mode::RegistrationMode::Open
        );
        jail.create_file("g.toml", "[oauth]\nregistration = \"public\"\n")?;
        let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("oauth.registration \"public\" must be off, open or token"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("g.toml", "listen_adress = \"1.2.3.4:1\"\n")?;
        let err = Config::load(Some(std::path::Path::new("g.toml"))).unwrap_err();
        assert!(err.to_string().contains("listen_adress"), "{err}");
        Ok(())
    });
}

#[test]
fn audit_sinks_and_retention_are_read_from_the_file() {
    use super::audit_sinks::{AuditSinkConfig, SinkEvents, SyslogTransport};
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            "[audit]\nretention = \"90d\"\narchive_dir = \"/var/lib/gatehouse/archive\"\n\
             [[audit.sinks]]\nkind = \"syslog\"\naddress = \"siem:514\"\ntransport = \"tcp\"\n\
             [[audit.sinks]]\nkind = \"webhook\"\nurl = \"https://hooks.example.com/a\"\n\
             secret_env = \"HOOK_SECRET\"\ndead_letter = \"dead.jsonl\"\n",
        )?;
        let config = Config::load(Some(std::path::Path::new("g.toml"))).unwrap();
        assert_eq!(config.audit.retention, Duration::from_secs(90 * 86_400));
        assert!(matches!(
            &config.audit.sinks[0],
            AuditSinkConfig::Syslog { transport: SyslogTransport::Tcp, events, .. }
                if events == &[SinkEvents::All]
        ));
        assert_eq!(
            config.audit.sinks[1].events(),
            [
                SinkEvents::Deny,
                SinkEvents::GuardrailBlock,
                SinkEvents::Admin
            ],
            "a webhook takes the decisions that need attention by default"
        );
        jail.create_file(
            "bad.toml",
            "[[audit.sinks]]\nkind = \"webhook\"\nurl = \"https://x\"\nsecret = \"inline\"\n\
             dead_letter = \"d\"\nsecret_env = \"S\"\n",
        )?;
        let err = Config::load(Some(std::path::Path::new("bad.toml"))).unwrap_err();
        assert!(
            err.to_string().contains("secret"),
            "a secret in the file is refused: {err}"
        );
        Ok(())
    });
}
