//! Creating and reusing a run directory (`attrib train`); its layout is in [`crate::files`].
//!
//! Every file is written to a temporary file in the same folder and renamed into place, so an
//! interrupted run (Ctrl-C) never leaves a half-written file: each file holds either its previous
//! complete content or its new complete content. Temporary files (`.NAME.SEQ.PID.tmp`) left by a
//! killed process are removed by the next command that opens the run
//! ([`sweep_stale_temporaries`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine::Float;
use nn::{Layout, RunConfig, TrainState};

use crate::error::{io, Result, RunError};
use crate::files::{checkpoint_name, CONFIG, METRICS, PARAMS, TRAJECTORY};

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// An existing run directory (one holding `config.toml`).
    ///
    /// # Errors
    /// If `root` holds no `config.toml`.
    pub fn open(root: &Path) -> Result<RunDir> {
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        if !dir.config().is_file() {
            return Err(RunError::Refused(format!(
                "{} is not a run directory (no {CONFIG}); create one with `attrib train --config FILE --out {}`",
                root.display(),
                root.display()
            )));
        }
        Ok(dir)
    }

    /// Creates (or takes over) `root` for a run of `cfg` and writes its `config.toml`.
    ///
    /// - No folder, or an empty one: created, config written.
    /// - A run with the same resolved config: kept (its files are overwritten as training goes).
    /// - A run with a different config: refused, showing the differing fields, unless `force`,
    ///   which deletes its params, metrics and trajectory first.
    /// - A non-empty folder that is not a run: refused unless `force`.
    ///
    /// # Errors
    /// The refusals above, and I/O errors naming the file.
    pub fn create(root: &Path, cfg: &RunConfig, force: bool) -> Result<RunDir> {
        let dir = RunDir {
            root: root.to_path_buf(),
        };
        let shown = root.display();
        if root.exists() && !root.is_dir() {
            return Err(refused(format!(
                "{shown} exists and is not a folder; choose another --out"
            )));
        }
        if dir.config().is_file() {
            let previous = std::fs::read_to_string(dir.config()).map_err(io(&dir.config()))?;
            match RunConfig::from_toml_str(&previous, &dir.config()) {
                Ok(old) if old == *cfg => {}
                Ok(_) if !force => return Err(refused(format!(
                    "{shown} already holds a run with a different configuration:\n{}\nchoose another --out \
                     folder, or pass --force to replace that run (its params, metrics and trajectory are deleted)",
                    config_diff(&previous, &cfg.to_toml())
                ))),
                Err(e) if !force => return Err(refused(format!(
                    "{shown} holds a {CONFIG} that is not a valid run configuration ({e}); choose another \
                     --out folder, or pass --force to replace it"
                ))),
                _ => dir.remove_outputs()?,
            }
        } else if root.is_dir() && !force {
            // A fresh run may already hold the arrays it is trained on (`files::INPUTS`).
            let non_empty = std::fs::read_dir(root)
                .map_err(io(root))?
                .any(|e| e.map_or(true, |e| e.file_name() != crate::files::INPUTS));
            if non_empty {
                return Err(refused(format!(
                    "{shown} is not empty and is not a run directory (no {CONFIG}); choose a new or empty \
                     folder, or pass --force to write into it"
                )));
            }
        } else if force {
            dir.remove_outputs()?;
        }
        std::fs::create_dir_all(root).map_err(io(root))?;
        sweep_stale_temporaries(root);
        data::write_atomic(&dir.config(), cfg.to_toml().as_bytes())?;
        Ok(dir)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DIR/config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG)
    }

    /// `DIR/metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join(METRICS)
    }

    /// `DIR/params.safetensors`.
    pub fn params(&self) -> PathBuf {
        self.root.join(PARAMS)
    }

    /// `DIR/trajectory`.
    pub fn trajectory(&self) -> PathBuf {
        self.root.join(TRAJECTORY)
    }

    /// `DIR/trajectory/step_NNNNNNNN.safetensors`.
    pub fn checkpoint(&self, step: usize) -> PathBuf {
        self.trajectory().join(checkpoint_name(step))
    }

    /// Writes the trajectory checkpoint of `state` (`trajectory/step_NNNNNNNN.safetensors`:
    /// parameters and optimizer buffers, `metadata` added to the file's) atomically, creating
    /// the folder; returns its path. [`crate::Run::checkpoints`] reads these files back.
    ///
    /// # Errors
    /// The folder cannot be created or the file written.
    pub fn write_checkpoint<F: Float>(
        &self,
        layout: &Layout,
        state: &TrainState<F>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<PathBuf> {
        let traj = self.trajectory();
        std::fs::create_dir_all(&traj).map_err(io(&traj))?;
        let path = self.checkpoint(state.opt.step);
        nn::io::save_state(&path, layout, state, metadata)?;
        Ok(path)
    }

    /// Reads the run's config (paths in it are absolute or relative to the run directory).
    ///
    /// # Errors
    /// As `RunConfig::from_toml_file`.
    pub fn read_config(&self) -> Result<RunConfig> {
        Ok(RunConfig::from_toml_file(&self.config())?)
    }

    /// Deletes the outputs of a previous run (never anything else).
    fn remove_outputs(&self) -> Result<()> {
        for file in [
            self.params(),
            self.metrics(),
            self.root.join(crate::files::METRICS_PARTIAL),
            self.root.join(crate::files::FINGERPRINT),
        ] {
            if file.is_file() {
                std::fs::remove_file(&file).map_err(io(&file))?;
            }
        }
        let traj = self.trajectory();
        if traj.is_dir() {
            std::fs::remove_dir_all(&traj).map_err(io(&traj))?;
        }
        Ok(())
    }
}

fn refused(message: String) -> RunError {
    RunError::Refused(message)
}

/// Removes the `.NAME.SEQ.PID.tmp` files that an atomic write of a process that no longer runs left
/// in `root` and its subfolders (a `kill -9`, a power cut: a failing write removes its own).
/// Temporaries of live processes are kept: another command may be writing into the same run.
/// Best effort: unreadable folders and files that cannot be removed are skipped.
pub fn sweep_stale_temporaries(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            sweep_stale_temporaries(&path);
        } else if kind.is_file() {
            let name = entry.file_name();
            if let Some(pid) = temporary_pid(&name.to_string_lossy()) {
                if !process_is_alive(pid) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

/// The writer's PID of a temporary named `.NAME.SEQ.PID.tmp` (as `data::write_atomic` names them).
fn temporary_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (stem, pid) = inner.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` runs: `/proc/PID` on Linux. Where there is no `/proc`, every writer is
/// taken for alive unless it is this process's own PID reused, so nothing is swept wrongly.
fn process_is_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// Resolves the config's relative paths against `base` (the config file's folder), so that the
/// resolved config means the same from any folder (it is stored inside the run directory).
pub fn absolute_paths(mut cfg: RunConfig, base: &Path) -> RunConfig {
    let fix = |p: &mut PathBuf| {
        let joined = if p.is_absolute() {
            p.clone()
        } else {
            base.join(&*p)
        };
        *p = std::fs::canonicalize(&joined)
            .unwrap_or_else(|_| std::path::absolute(&joined).unwrap_or(joined));
    };
    cfg.data.path.as_mut().map(fix);
    cfg.data.labels_path.as_mut().map(fix);
    cfg.train.init_from.as_mut().map(fix);
    cfg.train.weights.as_mut().map(fix);
    cfg.train.weights.as_mut().map(fix);
    cfg
}

/// The folder that relative paths of a config file start from.
pub fn config_base(config: &Path) -> PathBuf {
    match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The fields that differ between two TOML configs, as `- table.field = old` / `+ ... = new`
/// lines.
pub fn config_diff(old: &str, new: &str) -> String {
    let flat = |text: &str| -> Vec<String> {
        let mut lines = Vec::new();
        match text.parse::<toml::Table>() {
            Ok(t) => flatten("", &toml::Value::Table(t), &mut lines),
            Err(_) => lines.extend(text.lines().map(str::to_string)),
        }
        lines
    };
    let (a, b) = (flat(old), flat(new));
    let mut out: Vec<String> = a
        .iter()
        .filter(|l| !b.contains(l))
        .map(|l| format!("  - {l}"))
        .collect();
    out.extend(
        b.iter()
            .filter(|l| !a.contains(l))
            .map(|l| format!("  + {l}")),
    );
    if out.is_empty() {
        out.push("  (the files differ only in formatting)".into());
    }
    format!(
        "{}\n(- in the existing run, + in the new config)",
        out.join("\n")
    )
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push(format!("{prefix} = {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "[data]\nsource = \"breast_cancer\"\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n";

    fn cfg(text: &str) -> RunConfig {
        RunConfig::from_toml_str(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn names_are_fixed() {
        assert_eq!(checkpoint_name(12), "step_00000012.safetensors");
        let d = RunDir {
            root: PathBuf::from("r"),
        };
        assert_eq!(
            d.checkpoint(3),
            Path::new("r/trajectory/step_00000003.safetensors")
        );
        assert_eq!(d.params(), Path::new("r/params.safetensors"));
    }

    // See: issue 13, item 3.
    #[test]
    fn stale_temporaries_of_dead_writers_are_swept_and_live_ones_kept() {
        assert_eq!(temporary_pid(".params.safetensors.123.tmp"), Some(123));
        assert_eq!(temporary_pid(".x.tmp"), None);
        assert_eq!(temporary_pid("..7.tmp"), None);
        assert_eq!(temporary_pid("notes.123.tmp"), None);
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("scores");
        std::fs::create_dir(&sub).unwrap();
        // A PID that has exited: a child we waited for (PIDs are reused only after wrapping).
        let dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        let mut dead = dead;
        dead.wait().unwrap();
        let stale = sub.join(format!(".m.npy.{dead_pid}.tmp"));
        let live = tmp
            .path()
            .join(format!(".metrics.jsonl.{}.tmp", std::process::id()));
        let mine = tmp.path().join(".notes.tmp");
        for f in [&stale, &live, &mine] {
            std::fs::write(f, b"half").unwrap();
        }
        sweep_stale_temporaries(tmp.path());
        assert!(!stale.exists(), "a dead writer's temporary is swept");
        assert!(
            live.exists() && mine.exists(),
            "live writers and other files stay"
        );
    }

    #[test]
    fn open_requires_a_config() {
        let tmp = tempfile::tempdir().unwrap();
        let e = RunDir::open(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("is not a run directory (no config.toml)")
                && e.contains("attrib train --config FILE --out"),
            "{e}"
        );
    }

    #[test]
    fn create_keeps_same_refuses_different_and_forces() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("run");
        let a = cfg(CFG);
        let b = cfg(&CFG.replace("lr = 0.1", "lr = 0.2"));
        let d = RunDir::create(&root, &a, false).unwrap();
        std::fs::write(d.params(), b"old").unwrap();
        RunDir::create(&root, &a, false).unwrap();
        assert!(d.params().exists(), "same config keeps the files");
        let e = RunDir::create(&root, &b, false).unwrap_err().to_string();
        assert!(
            e.contains("different configuration")
                && e.contains("- optim.lr = 0.1")
                && e.contains("+ optim.lr = 0.2"),
            "{e}"
        );
        assert!(e.contains("--force"), "{e}");
        RunDir::create(&root, &b, true).unwrap();
        assert!(!d.params().exists(), "--force deletes the old outputs");
        assert_eq!(d.read_config().unwrap(), b);
    }

    #[test]
    fn create_refuses_foreign_folders() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let e = RunDir::create(tmp.path(), &cfg(CFG), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty"), "{e}");
        RunDir::create(tmp.path(), &cfg(CFG), true).unwrap();
        assert!(
            tmp.path().join("notes.txt").exists(),
            "--force never deletes foreign files"
        );
        let file = tmp.path().join("notes.txt");
        assert!(RunDir::create(&file, &cfg(CFG), true).is_err());
    }

    #[test]
    fn paths_become_absolute() {
        let text = "[data]\nsource = \"csv\"\npath = \"d.csv\"\n[model]\nkind = \"logistic\"\n[optim]\nkind = \"sgd\"\nlr = 0.1\n";
        let c = absolute_paths(cfg(text), Path::new("some/folder"));
        let p = c.data.path.unwrap();
        assert!(
            p.is_absolute() && p.ends_with("some/folder/d.csv"),
            "{}",
            p.display()
        );
        assert_eq!(config_base(Path::new("run.toml")), Path::new("."));
        assert_eq!(config_base(Path::new("a/run.toml")), Path::new("a"));
    }
}
