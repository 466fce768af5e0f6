//! Every setting as a command-line flag, generated from the settings table
//! ([`SETTINGS`]): name, placeholder, help, environment variable and default
//! are written once, there.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, value_parser};
use lease_elector::config::FlagValues;
use lease_elector::config::table::{Kind, SETTINGS};

/// The flags given: `--config` and one value per setting set by flag.
#[derive(Debug, Default)]
pub struct SettingFlags {
    config: Option<PathBuf>,
    values: FlagValues,
}

impl SettingFlags {
    /// The `--config` path, if given.
    pub fn file(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// The settings given by flag, keyed by dotted name.
    pub fn values(&self) -> FlagValues {
        self.values.clone()
    }
}

impl Args for SettingFlags {
    fn augment_args(cmd: Command) -> Command {
        let config = Arg::new("config")
            .long("config")
            .global(true)
            .value_name("PATH")
            .value_parser(value_parser!(PathBuf))
            .help("TOML settings file [default: ./config.toml when present]");
        let settings = SETTINGS.iter().map(|s| {
            let arg = Arg::new(s.key)
                .long(s.flag)
                .global(true)
                .value_name(s.value_name)
                .help(s.help_text());
            match s.kind {
                Kind::Text => arg,
                Kind::Bool => arg.value_parser(value_parser!(bool)),
            }
        });
        cmd.arg(config).args(settings)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = SettingFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            self.config = Some(path.clone());
        }
        for s in &SETTINGS {
            let flag = format!("--{}", s.flag);
            match s.kind {
                Kind::Text => {
                    if let Some(v) = matches.get_one::<String>(s.key) {
                        self.values.set(s.key, &flag, v.clone());
                    }
                }
                Kind::Bool => {
                    if let Some(v) = matches.get_one::<bool>(s.key) {
                        self.values.set(s.key, &flag, *v);
                    }
                }
            }
        }
        Ok(())
    }
}
