//! `create`, `stat`, `list`, `rm` and `prune`: rings and topic directories.

use super::{create_ring, print_json, Failure};
use ringmq::{ConsumerKind, FileKind, ProducerMode, Ring, RingBuilder, TopicDir};
use serde_json::{json, Value};
use std::path::Path;

/// `create RING`: a new ring as `builder` describes it.
pub(super) fn create(ring: &str, builder: RingBuilder, json: bool) -> Result<(), Failure> {
    let created = create_ring(ring, builder)?;
    let path = created.path().unwrap_or(Path::new(ring)).to_owned();
    if json {
        print_json(&json!({
            "path": path,
            "capacity": created.capacity(),
            "slot_size": created.slot_size(),
            "fixed_size": created.fixed_size(),
        }));
    } else {
        println!("created {}", path.display());
    }
    Ok(())
}

/// `create RING --journal DIR`: the ring made anew for the journal (`journal::restore`).
pub(super) fn restore(path: &Path, builder: RingBuilder, dir: &Path, json: bool) -> Result<(), Failure> {
    let ring = ringmq::journal::restore(builder, path, dir)?;
    let groups: Vec<(String, u64)> = ring
        .consumers()
        .into_iter()
        .filter(|c| c.kind == ConsumerKind::Group)
        .map(|c| (c.name, c.sequence.unwrap_or(ring.next_sequence())))
        .collect();
    if json {
        print_json(&json!({
            "path": path,
            "capacity": ring.capacity(),
            "slot_size": ring.slot_size(),
            "fixed_size": ring.fixed_size(),
            "initial_sequence": ring.initial_sequence(),
            "next_sequence": ring.next_sequence(),
            "groups": groups.iter().map(|(name, at)| json!({"name": name, "sequence": at})).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "created {} from the journal: sequences {}..{} held",
            path.display(),
            ring.initial_sequence(),
            ring.next_sequence()
        );
        for (name, at) in groups {
            println!("  group {name} at {at}");
        }
    }
    Ok(())
}

/// `stat RING`: parameters, next sequence, consumers (after cleaning up after dead ones).
pub(super) fn stat(path: &Path, journal: Option<&Path>, json: bool) -> Result<(), Failure> {
    let ring = Ring::open(path)?;
    let journal = journal.map(|dir| super::journal::stat(&ring, dir)).transpose()?;
    let reaped = ring.reap_dead();
    let next = ring.next_sequence();
    let consumers = ring.consumers();
    let kind = |k: ConsumerKind| match k {
        ConsumerKind::Subscriber => "subscriber",
        ConsumerKind::Group => "group",
        ConsumerKind::Worker => "worker",
    };
    let mode = match ring.producer_mode() {
        ProducerMode::Single => "single",
        ProducerMode::Multi => "multi",
    };
    if json {
        let list: Vec<Value> = consumers
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "kind": kind(c.kind),
                    "group": c.group,
                    "sequence": c.sequence,
                    "lag": c.sequence.map(|s| next.saturating_sub(s)),
                    "after": c.after,
                    "durable": c.durable,
                    "alive": c.alive,
                })
            })
            .collect();
        print_json(&json!({
            "path": path,
            "capacity": ring.capacity(),
            "slot_size": ring.slot_size(),
            "fixed_size": ring.fixed_size(),
            "producer_mode": mode,
            "next_sequence": next,
            "skipped": ring.skipped_count(),
            "redelivered": ring.redelivered_count(),
            "reaped": reaped,
            "consumers": list,
            "journal": journal,
        }));
        return Ok(());
    }
    println!("ring        {}", path.display());
    let messages = match ring.fixed_size() {
        Some(_) => "fixed-size messages (no slot headers)".to_owned(),
        None => format!("messages up to {} bytes", ring.max_message_len()),
    };
    println!(
        "parameters  {} slots of {} bytes, {messages}, {mode} producer",
        ring.capacity(),
        ring.slot_size()
    );
    println!("next        {next}");
    println!(
        "skipped     {}   redelivered {}   cleaned up now {reaped}",
        ring.skipped_count(),
        ring.redelivered_count()
    );
    if let Some(j) = &journal {
        let or_dash = |v: &Value| {
            if v.is_null() {
                "-".to_owned()
            } else {
                v.to_string()
            }
        };
        println!(
            "journal     {}: {} segments, sequences {}..{}",
            j["dir"].as_str().unwrap_or("?"),
            j["segments"],
            j["oldest"],
            j["written"]
        );
        println!(
            "durable     {} (lag {}), stage {}",
            or_dash(&j["durable"]),
            or_dash(&j["durable_lag"]),
            if j["stage_alive"] == true {
                "alive"
            } else {
                "not running"
            }
        );
        if let Some(positions) = j["positions"].as_object().filter(|p| !p.is_empty()) {
            let list: Vec<String> = positions.iter().map(|(n, p)| format!("{n} {p}")).collect();
            println!("persisted   {}", list.join(", "));
        }
    }
    let columns = ["consumer", "kind", "group", "sequence", "lag", "state", "after"];
    println!(
        "{:<24} {:<10} {:<16} {:>14} {:>10} {:<6} {}",
        columns[0], columns[1], columns[2], columns[3], columns[4], columns[5], columns[6]
    );
    for c in &consumers {
        println!(
            "{:<24} {:<10} {:<16} {:>14} {:>10} {:<6} {}",
            c.name,
            format!("{}{}", kind(c.kind), if c.durable { "*" } else { "" }),
            c.group.as_deref().unwrap_or("-"),
            c.sequence.map_or("-".into(), |s| s.to_string()),
            c.sequence
                .map_or("-".into(), |s| next.saturating_sub(s).to_string()),
            if c.alive { "alive" } else { "dead" },
            c.after.join(",")
        );
    }
    Ok(())
}

/// `list [DIR]`: the files of a topic directory, classified. This user's /dev/shm
/// directory, before its first topic, is empty; any other directory must exist.
pub(super) fn list(topics: &TopicDir, json: bool) -> Result<(), Failure> {
    let files = match topics.list() {
        Err(ringmq::OpenError::NoSuchDirectory { .. }) if topics.dir() == TopicDir::shm().dir() => Vec::new(),
        other => other?,
    };
    let kind = |k: FileKind| match k {
        FileKind::Ring => "ring",
        FileKind::Unfinished => "unfinished",
        FileKind::Foreign => "foreign",
    };
    if json {
        let list: Vec<Value> = files
            .iter()
            .map(|f| json!({ "path": f.path, "kind": kind(f.kind), "in_use": f.in_use }))
            .collect();
        print_json(&json!({ "dir": topics.dir(), "rings": list }));
    } else {
        for f in &files {
            let state = if f.in_use { "in use" } else { "unused" };
            println!("{:<11} {:<7} {}", kind(f.kind), state, f.path.display());
        }
    }
    Ok(())
}

/// `rm RING`: removes a ring, refusing any other file.
pub(super) fn rm(path: &Path, json: bool) -> Result<(), Failure> {
    Ring::remove(path)?;
    if json {
        print_json(&json!({ "removed": path }));
    } else {
        println!("removed {}", path.display());
    }
    Ok(())
}

/// `prune [DIR]`: removes the rings nobody has open and abandoned half-made ones.
pub(super) fn prune(topics: &TopicDir, json: bool) -> Result<(), Failure> {
    let removed = match topics.prune() {
        Err(ringmq::OpenError::NoSuchDirectory { .. }) if topics.dir() == TopicDir::shm().dir() => Vec::new(),
        other => other?,
    };
    if json {
        print_json(&json!({ "removed": removed }));
    } else {
        for path in &removed {
            println!("removed {}", path.display());
        }
        println!("{} removed", removed.len());
    }
    Ok(())
}
