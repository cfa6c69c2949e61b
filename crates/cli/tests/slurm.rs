//! `attrib slurm --submit` on a real scheduler: a one-node Slurm cluster started on this machine
//! by `scripts/slurm_local.sh` (root, Debian's slurm-wlm and munge). Ground truth and MAGIC run
//! as array jobs with a dependent assemble job; the results must equal a single process's bit
//! for bit. Without root or Slurm the test says it is skipped; with `ATTRIB_REQUIRE_SLURM=1`
//! (set by `.ci/run`, which installs the packages) it fails instead, so CI cannot pass silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::RECIPE;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm_local.sh")
}

/// Why the cluster cannot be started here, if it cannot.
fn unavailable() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("not root".into());
    }
    for bin in ["sbatch", "slurmctld", "slurmd", "munged"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{bin} not installed (Debian: slurm-wlm, munge)"));
        }
    }
    None
}

/// A free TCP port pair for slurmctld and slurmd.
fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// The cluster; stopped on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

fn attrib(dir: &Path, conf: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_attrib"))
        .args(args)
        .current_dir(dir)
        .env("SLURM_CONF", conf)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "attrib {args:?} failed:\n{text}");
    text
}

/// Waits until the cluster has no queued or running job (or panics after `limit`).
fn wait_idle(conf: &Path, limit: Duration) {
    let start = Instant::now();
    loop {
        let o = Command::new("squeue")
            .args(["-h", "-o", "%i %T"])
            .env("SLURM_CONF", conf)
            .output()
            .unwrap();
        let q = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() && q.trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "jobs still queued after {limit:?}:\n{q}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn files_under(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// One cluster at a time: the test clusters share this machine's munged and hostname.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts a one-node cluster under `tmp`, or says why the test is skipped (`None`; a failure
/// instead under `ATTRIB_REQUIRE_SLURM=1`).
fn start_cluster(test: &str, tmp: &Path) -> Option<Cluster> {
    if let Some(why) = unavailable() {
        assert!(
            std::env::var("ATTRIB_REQUIRE_SLURM").as_deref() != Ok("1"),
            "ATTRIB_REQUIRE_SLURM=1 but Slurm cannot run here: {why}"
        );
        eprintln!("SKIPPED {test}: {why}");
        return None;
    }
    let cluster_dir = tmp.join("cluster");
    let start = Command::new(script())
        .arg("start")
        .arg(&cluster_dir)
        .env("SLURM_LOCAL_PORT", free_port().to_string())
        .output()
        .unwrap();
    let cluster = Cluster {
        conf: cluster_dir.join("slurm.conf"),
        dir: cluster_dir,
    };
    assert!(
        start.status.success(),
        "the local cluster did not start:\n{}{}",
        String::from_utf8_lossy(&start.stdout),
        String::from_utf8_lossy(&start.stderr)
    );
    Some(cluster)
}

/// Trains the recipe into `DIR/r` for each of `dirs`.
fn train(conf: &Path, dirs: &[&PathBuf]) {
    for d in dirs {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("r.toml"), RECIPE).unwrap();
        attrib(
            d,
            conf,
            &["--quiet", "train", "--config", "r.toml", "--out", "r"],
        );
    }
}

#[test]
fn array_jobs_on_a_local_slurm_cluster_give_the_single_process_bits() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let Some(cluster) = start_cluster("array_jobs_on_a_local_slurm_cluster", tmp.path()) else {
        return;
    };
    let conf = &cluster.conf;

    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    train(conf, &[&single, &sharded]);
    let gt = [
        "groundtruth",
        "--run",
        "r",
        "--drop",
        "0.05",
        "--subsets",
        "12",
    ];
    let magic = [
        "attribute",
        "--run",
        "r",
        "--method",
        "magic",
        "--targets",
        "0..10",
        "--option",
        "block=2",
        "--name",
        "m",
    ];
    attrib(&single, conf, &gt);
    attrib(&single, conf, &magic);

    let slurm = [
        "slurm",
        "--run",
        "r",
        "--shards",
        "3",
        "--cpus-per-task",
        "1",
        "--mem",
        "500M",
    ];
    for (name, command) in [("gt", &gt[..]), ("magic", &magic[..])] {
        let mut args = slurm.to_vec();
        args.extend_from_slice(&["--name", name, "--submit", "--"]);
        args.extend_from_slice(command);
        let out = attrib(&sharded, conf, &args);
        assert!(out.contains("submitted array job"), "{out}");
        // One stage at a time: MAGIC's shards read nothing of ground truth, but the check below
        // wants each stage's logs.
        wait_idle(conf, Duration::from_secs(180));
    }
    let logs = files_under(&sharded.join("r/slurm/logs"));
    let log_text: String = logs
        .iter()
        .map(|(p, b)| format!("== {}\n{}", p.display(), String::from_utf8_lossy(b)))
        .collect();
    // 3 array tasks and 1 assemble job per stage, each shard doing only its part.
    assert_eq!(logs.len(), 8, "{log_text}");
    assert!(
        log_text.contains("shard 2/3: 4 subsets computed"),
        "{log_text}"
    );
    assert!(log_text.contains("magic shard 1/3"), "{log_text}");

    let gt_files = |d: &Path| files_under(&d.join("r/groundtruth"));
    assert_eq!(
        gt_files(&single),
        gt_files(&sharded),
        "ground truth differs"
    );
    let npy = |d: &Path| std::fs::read(d.join("r/scores/m.npy")).unwrap();
    assert!(npy(&single) == npy(&sharded), "MAGIC scores differ");
}

/// `squeue` lines `ID STATE REASON` of the cluster's jobs (array tasks one per line).
fn queue(conf: &Path) -> String {
    let o = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i %T %r"])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    assert!(o.status.success(), "squeue failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scancel(conf: &Path, id: &str) {
    let o = Command::new("scancel")
        .arg(id)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scancel {id}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The array and assemble job ids of `attrib slurm --submit`'s last line.
fn job_ids(out: &str) -> (String, String) {
    let line = out
        .lines()
        .find(|l| l.starts_with("submitted array job"))
        .unwrap_or_else(|| panic!("no submission in:\n{out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[3].to_string(), words[7].to_string())
}

/// Subset files of the run's ground-truth folders with their modification times.
fn subset_times(run: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut out: Vec<_> = files_under(&run.join("groundtruth"))
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("subset_"))
        .map(|(p, _)| {
            let t = std::fs::metadata(run.join("groundtruth").join(&p))
                .unwrap()
                .modified()
                .unwrap();
            (p, t)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_cancelled_array_task_leaves_only_its_entries_to_the_rerun() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let Some(cluster) = start_cluster("a_cancelled_array_task", tmp.path()) else {
        return;
    };
    let conf = &cluster.conf;
    let (single, sharded) = (tmp.path().join("single"), tmp.path().join("sharded"));
    train(conf, &[&single, &sharded]);
    let gt = [
        "groundtruth",
        "--run",
        "r",
        "--drop",
        "0.05",
        "--subsets",
        "12",
    ];
    attrib(&single, conf, &gt);
    let submit = |name: &str| {
        let mut args = vec![
            "slurm",
            "--run",
            "r",
            "--shards",
            "3",
            "--max-running",
            "1",
            "--cpus-per-task",
            "1",
            "--mem",
            "500M",
            "--name",
            name,
            "--submit",
            "--",
        ];
        args.extend_from_slice(&gt);
        job_ids(&attrib(&sharded, conf, &args))
    };

    // Throttled to one task at a time, task 2 is still queued behind tasks 0 and 1 when it is
    // cancelled (if it had run already, its subsets would be present and the checks below fail).
    let (array, assemble) = submit("first");
    scancel(conf, &format!("{array}_2"));
    // The array ends without task 2, and the assemble job, which needs every task to have
    // succeeded, never becomes eligible.
    let start = Instant::now();
    loop {
        let q = queue(conf);
        if !q.lines().any(|l| l.starts_with(&format!("{array}_"))) {
            let line = q.lines().find(|l| l.starts_with(&assemble));
            assert!(
                line.is_some_and(|l| l.contains("PENDING") && l.contains("Dependency")),
                "the assemble job should wait on the failed array:\n{q}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "array still queued:\n{q}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    scancel(conf, &assemble);
    wait_idle(conf, Duration::from_secs(60));
    let status = attrib(&sharded, conf, &["--json", "status", "--run", "r"]);
    assert!(
        status.contains(r#""present":8,"expected":12,"missing":[2,5,8,11]"#),
        "exactly task 2's subsets are missing: {status}"
    );
    let before = subset_times(&sharded.join("r"));
    assert_eq!(before.len(), 8);

    // The rerun of the whole array computes task 2's four subsets and nothing else.
    submit("rerun");
    wait_idle(conf, Duration::from_secs(180));
    let logs = files_under(&sharded.join("r/slurm/logs"));
    let rerun: String = logs
        .iter()
        .filter(|(p, _)| p.to_string_lossy().starts_with("rerun"))
        .map(|(p, b)| format!("== {}\n{}", p.display(), String::from_utf8_lossy(b)))
        .collect();
    assert_eq!(
        logs.iter()
            .filter(|(p, _)| p.to_string_lossy().starts_with("rerun"))
            .count(),
        4,
        "{rerun}"
    );
    for line in [
        "shard 0/3: 0 subsets computed",
        "shard 1/3: 0 subsets computed",
        "shard 2/3: 4 subsets computed",
        "0 computed now",
    ] {
        assert!(rerun.contains(line), "{line:?} not in:\n{rerun}");
    }
    let after = subset_times(&sharded.join("r"));
    assert_eq!(after.len(), 12);
    for (p, t) in &before {
        assert!(
            after.contains(&(p.clone(), *t)),
            "{} was rewritten",
            p.display()
        );
    }
    let gt_files = |d: &Path| files_under(&d.join("r/groundtruth"));
    assert_eq!(
        gt_files(&single),
        gt_files(&sharded),
        "ground truth differs"
    );
}
