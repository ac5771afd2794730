//! The rotation matrix and the other hard cases of the tailer, each driven one poll
//! round at a time against real files and a real store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tail_support;

use std::io::Write;

use tail_support::{assert_exactly_once, halves, line, rename, truncate, Harness};

fn lines(seqs: std::ops::Range<u64>) -> String {
    seqs.map(|s| line(s, 150)).collect()
}

#[test]
fn rename_and_create_drains_the_old_descriptor_before_closing_it() {
    let mut h = Harness::new("app.log", "read_grace = \"0s\"");
    h.append("app.log", &lines(0..3));
    // The app keeps its descriptor across the rename and writes a little more.
    let mut app = std::fs::OpenOptions::new().append(true).open(h.path("app.log")).unwrap();
    h.poll();
    rename(&h, "app.log", "app.log.1");
    app.write_all(lines(3..5).as_bytes()).unwrap();
    h.append("app.log", &lines(5..7));
    let r = h.poll();
    assert_eq!((r.files, r.open), (1, 1), "the drained, rotated file is closed: {r:?}");
    h.stop();
    assert_exactly_once(&h.stored(), 0..7);
    assert_eq!(h.metric(r#"passportd_tail_files_closed_total{source="t"}"#), 1.0);
}

#[test]
fn copytruncate_recovers_the_race_window_from_the_rotated_copy() {
    let mut h = Harness::new("app.log", "");
    h.append("app.log", &lines(0..3));
    h.poll();
    // Written after the last read, then copied and truncated: only the copy has them.
    h.append("app.log", &lines(3..6));
    std::fs::copy(h.path("app.log"), h.path("app.log.1")).unwrap();
    truncate(&h, "app.log");
    h.append("app.log", &lines(6..8));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..8);
    assert_eq!(h.metric(r#"passportd_tail_truncations_total{source="t"}"#), 1.0);
    assert_eq!(h.metric(r#"passportd_tail_recovered_total{source="t"}"#), 1.0);
}

#[test]
fn delete_and_recreate_and_delete_while_open() {
    let mut h = Harness::new("app.log", "read_grace = \"0s\"");
    h.append("app.log", &lines(0..2));
    let mut app = std::fs::OpenOptions::new().append(true).open(h.path("app.log")).unwrap();
    h.poll();
    std::fs::remove_file(h.path("app.log")).unwrap();
    // Unlinked but still written through an open descriptor: the bytes exist.
    app.write_all(lines(2..4).as_bytes()).unwrap();
    h.append("app.log", &lines(4..6));
    let r = h.poll();
    assert_eq!((r.files, r.open), (1, 1), "the deleted file was drained and closed: {r:?}");
    std::fs::remove_file(h.path("app.log")).unwrap();
    let r = h.poll();
    assert_eq!((r.files, r.open), (0, 0));
    h.stop();
    assert_exactly_once(&h.stored(), 0..6);
}

#[cfg(unix)]
#[test]
fn symlink_swap_follows_the_new_target_and_drains_the_old() {
    let mut h = Harness::new("current.log", "read_grace = \"0s\"");
    h.append("a.log", &lines(0..2));
    std::os::unix::fs::symlink(h.path("a.log"), h.path("current.log")).unwrap();
    h.poll();
    h.append("a.log", &lines(2..3));
    h.append("b.log", &lines(3..5));
    std::fs::remove_file(h.path("current.log")).unwrap();
    std::os::unix::fs::symlink(h.path("b.log"), h.path("current.log")).unwrap();
    h.poll();
    h.append("b.log", &lines(5..6));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..6);
}

#[test]
fn rotation_while_stopped_is_found_again_by_its_content() {
    let mut h = Harness::new("app.log", "read_grace = \"0s\"");
    h.append("app.log", &lines(0..3));
    h.poll();
    h.stop();
    // While the daemon is down: more lines, a rotation to a name the glob does not
    // match, and a new file.
    h.append("app.log", &lines(3..5));
    rename(&h, "app.log", "app.log.1");
    h.append("app.log", &lines(5..7));
    h.start();
    h.poll();
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..7);
}

#[test]
fn two_rotations_between_polls() {
    let mut h = Harness::new("app.log*", "");
    h.append("app.log", &lines(0..2));
    h.poll();
    h.append("app.log", &lines(2..3));
    rename(&h, "app.log", "app.log.1");
    h.append("app.log", &lines(3..5));
    rename(&h, "app.log.1", "app.log.2");
    rename(&h, "app.log", "app.log.1");
    h.append("app.log", &lines(5..7));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..7);
}

#[test]
fn same_inode_with_new_content_is_a_new_generation() {
    let mut h = Harness::new("app.log", "");
    h.append("app.log", &lines(0..2));
    h.poll();
    h.stop();
    // Rewritten in place (what inode reuse looks like): longer than before, other bytes.
    std::fs::write(h.path("app.log"), lines(10..15)).unwrap();
    h.start();
    h.poll();
    // And the same while running.
    std::fs::write(h.path("app.log"), lines(20..26)).unwrap();
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), (0..2).chain(10..15).chain(20..26));
    assert_eq!(h.metric(r#"passportd_tail_generation_resets_total{source="t"}"#), 1.0);
}

#[test]
fn a_partial_line_across_a_restart_is_one_record() {
    let mut h = Harness::new("app.log", "");
    let full = line(7, 200);
    let (abc, def) = full.split_at(90);
    h.append("app.log", abc);
    h.poll();
    h.restart();
    h.poll();
    h.append("app.log", def);
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), [7]);
    assert_eq!(h.parse_errors(), 0.0);
}

#[test]
fn a_ten_mebibyte_line_between_normal_ones() {
    let mut h = Harness::new("app.log", "");
    h.append("app.log", &line(1, 200));
    h.append("app.log", &format!("{}\n", "y".repeat(10 * 1024 * 1024)));
    h.append("app.log", &line(2, 200));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), [1, 2]);
    assert_eq!(h.parse_errors(), 1.0, "the long line is counted, not stored");
    assert_eq!(
        h.metric(r#"passportd_parse_errors_total{reason="line_too_long",source="t"}"#),
        1.0,
        "counted as line_too_long (max_line_bytes defaults to 1 MiB)"
    );
    assert_eq!(h.metric(r#"passportd_tail_lag_bytes{source="t"}"#), 0.0, "the checkpoint moved past it");
}

#[test]
fn five_thousand_files_under_a_descriptor_cap_of_256() {
    let mut h = Harness::new("*.log", "max_open_files = 256");
    for i in 0..5000u64 {
        h.append(&format!("f{i:04}.log"), &line(i, 100));
    }
    let r = h.poll();
    assert!(r.open <= 256, "{r:?}");
    assert_eq!(r.files, 5000);
    // Idle files were closed; growing ones are reopened (with an identity check).
    for i in (0..5000u64).step_by(50) {
        h.append(&format!("f{i:04}.log"), &line(10_000 + i, 100));
    }
    let r = h.poll();
    assert!(r.open <= 256, "{r:?}");
    h.stop();
    assert_exactly_once(&h.stored(), (0..5000).chain((0..5000).step_by(50).map(|i| 10_000 + i)));
}

#[test]
fn start_at_end_and_ignore_older_only_concern_files_found_at_start_up() {
    let mut h = Harness::new("*.log", "start_at = \"end\"\nignore_older = \"1h\"");
    h.append("present.log", &lines(0..2));
    h.append("old.log", &lines(2..3));
    // A line half-written when the tailer starts is read whole once finished, not from
    // where it was cut (which would be an unknown_format parse error).
    let (head, tail) = halves(6, 70);
    h.append("busy.log", &format!("{}{head}", lines(7..8)));
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options().write(true).open(h.path("old.log")).unwrap().set_modified(old).unwrap();
    h.restart(); // the files above now exist "at start-up"
    h.poll();
    h.append("busy.log", &tail);
    h.append("present.log", &lines(3..4));
    h.append("new.log", &lines(4..6));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 3..7);
    assert_eq!(h.parse_errors(), 0.0);
    // Later starts: a file that appeared while passportd was stopped (a rotation's new
    // file) is new, read whole, not from its end.
    h.append("present.log", &lines(8..9));
    h.append("rotated-while-stopped.log", &lines(9..11));
    h.start();
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), (3..7).chain(8..11));
}

#[test]
fn forgets_checkpoints_of_files_unseen_for_forget_after() {
    let mut h = Harness::new("app.log", "");
    h.append("app.log", &lines(0..1));
    h.poll();
    h.stop();
    let store = h.core.store.clone();
    assert_eq!(h.rt.block_on(store.checkpoints("t")).unwrap().len(), 1);
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(h.rt.block_on(store.forget_stale_checkpoints("t", past)).unwrap(), 0, "recent ones stay");
    let future = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(h.rt.block_on(store.forget_stale_checkpoints("t", future)).unwrap(), 1);
}

#[test]
fn lines_written_before_a_restart_survive_a_copytruncate_before_the_first_poll() {
    // Found by the tail model: the restarted tailer has not read the file yet when it is
    // copied and truncated; the copy holds every line.
    for _ in 0..5 {
        let mut h = Harness::new("app.log*", "read_grace = \"0s\"\nmax_open_files = 2\npoll_interval = \"10ms\"");
        h.append("app.log", &lines(0..3));
        h.restart();
        std::fs::copy(h.path("app.log"), h.path("app.log.1")).unwrap();
        truncate(&h, "app.log");
        h.poll();
        h.stop();
        assert_exactly_once(&h.stored(), 0..3);
    }
}

#[test]
fn a_copy_seen_empty_or_half_written_beside_an_unread_file_is_not_a_new_file() {
    // Found by the crash fuzz: the live file is first seen in the same round as its copy
    // (created empty, or cut short, by copytruncate), so nothing of it has been read
    // yet. Taken as a new file, the copy would be read whole once complete.
    for partial in [0usize, 40, 200] {
        let mut h = Harness::new("app.log*", "read_grace = \"0s\"");
        let text = lines(0..4);
        h.append("app.log", &text);
        std::fs::write(h.path("app.log.1"), &text.as_bytes()[..partial]).unwrap();
        h.poll();
        std::fs::write(h.path("app.log.1"), &text).unwrap();
        truncate(&h, "app.log");
        h.append("app.log", &lines(4..6));
        for _ in 0..8 {
            h.poll();
        }
        h.stop();
        assert_exactly_once(&h.stored(), 0..6);
    }
}

#[test]
fn a_file_remembered_empty_that_fills_with_a_copy_across_a_restart_is_not_read_twice() {
    // The copy's checkpoint was taken while it was empty (its inode says nothing of what
    // fills it); after the restart its content shows it holds the live file's lines.
    let mut h = Harness::new("app.log*", "read_grace = \"0s\"");
    let text = lines(0..4);
    h.append("app.log", &text);
    std::fs::write(h.path("app.log.1"), "").unwrap();
    h.poll();
    h.restart();
    std::fs::write(h.path("app.log.1"), &text).unwrap();
    truncate(&h, "app.log");
    h.append("app.log", &lines(4..6));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..6);
}

#[test]
fn a_new_file_that_only_looks_like_a_partial_copy_is_read_after_the_wait() {
    // It holds a followed file's first line and nothing else, so it may be that file's
    // copy still being written; once it has waited (5 rounds and 1 s) it is a file of
    // its own and read whole, even though it was renamed out of `paths` meanwhile.
    let mut h = Harness::new("app.log*", "read_grace = \"0s\"");
    h.append("app.log", &lines(0..4));
    h.poll();
    h.append("app.log.1", &lines(0..1));
    h.poll();
    rename(&h, "app.log.1", "elsewhere.log");
    let want = (lines(0..4).len() + lines(0..1).len()) as f64;
    let started = std::time::Instant::now();
    while h.metric(r#"passportd_tail_bytes_read_total{source="t"}"#) < want {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the look-alike was never read");
        h.poll();
        // The poll interval, bounded by the deadline above.
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(500), "it waited for the copy to complete");
    h.stop();
    let stored = h.stored();
    assert_eq!(stored.get(&0), Some(&2), "its own line 0 counts too: {stored:?}");
    assert_eq!(stored.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

/// More files rotate at once than `max_open_files` allows open: the rotated-away ones
/// that had to be closed still hold unread lines, in the same folder. They are reopened
/// (by inode, where they went) and drained before they are given up.
#[test]
fn rotating_more_files_than_the_descriptor_cap_loses_nothing() {
    let mut h = Harness::new("*.log", "read_grace = \"0s\"\nmax_open_files = 2");
    let names: Vec<String> = (0..4).map(|i| format!("f{i}.log")).collect();
    let mut seq = 0u64;
    for name in &names {
        h.append(name, &lines(seq..seq + 3));
        seq += 3;
    }
    h.poll();
    // Every file grows, is renamed away in the same folder, and a new one takes its name.
    for name in &names {
        h.append(name, &lines(seq..seq + 3));
        seq += 3;
        rename(&h, name, &format!("{name}.1"));
        h.append(name, &lines(seq..seq + 1));
        seq += 1;
    }
    for _ in 0..3 {
        h.poll();
    }
    h.stop();
    assert_exactly_once(&h.stored(), 0..seq);
}

/// Two different exports of one kind can share a long header (a Log Analytics portal CSV
/// with every column has one of over 1 KiB). The second is a new file, read from its
/// start, not the first one moved and resumed at its offset.
#[test]
fn a_new_file_sharing_a_long_header_with_a_followed_one_is_read_whole() {
    let mut h = Harness::new("*.log", "read_grace = \"0s\"");
    let header = format!("{{\"header\":\"{}\"}}\n", "h".repeat(2000));
    h.append("export-1.log", &format!("{header}{}", lines(0..5)));
    h.poll();
    // The second export is written elsewhere and moved in whole, as a download would be.
    let staged = h.path("export-2.tmp");
    std::fs::write(&staged, format!("{header}{}", lines(5..15))).unwrap();
    std::fs::rename(&staged, h.path("export-2.log")).unwrap();
    h.poll();
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..15);
}

#[test]
fn a_last_record_without_its_newline_is_read_once_the_file_is_idle() {
    // An hourly PT1H.json blob may end without a newline and never grow again.
    let mut h = Harness::new("PT1H.json", "");
    let mut text = lines(0..3);
    text.pop();
    h.append("PT1H.json", &text);
    h.poll();
    h.sync();
    assert_exactly_once(&h.stored(), 0..3);
    // The newline (and more) may still come: blank, then records read once, also across
    // a restart.
    h.append("PT1H.json", &format!("\n{}", line(3, 150)));
    h.poll();
    h.restart();
    h.append("PT1H.json", &line(4, 150));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..5);
    assert_eq!(h.parse_errors(), 0.0);
}

#[test]
fn a_line_still_being_written_is_not_read_before_it_is_whole() {
    let mut h = Harness::new("PT1H.json", "");
    let (head, tail) = halves(0, 60);
    h.append("PT1H.json", &head);
    h.poll();
    h.poll();
    h.append("PT1H.json", &tail);
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..1);
    assert_eq!(h.parse_errors(), 0.0);
}

#[test]
fn a_rotated_file_still_matched_emits_its_unterminated_text_line_once_idle() {
    // `app.log*` matches the rotated name too: the generation is renamed, never gone.
    let mut h = Harness::new("app.log*", "read_grace = \"0s\"");
    let entry = |n: u32| {
        format!(
            "2026-03-04 08:15:0{n}.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) \
             [io.kandji.passport:auth] Token request failed: AADSTS50126: Error validating credentials \
             due to invalid username or password. attempt {n}"
        )
    };
    h.append("app.log", &format!("{}\n{}", entry(1), entry(2)));
    h.poll();
    rename(&h, "app.log", "app.log.1");
    h.append("app.log", &format!("{}\n", entry(3)));
    h.poll();
    // The last message waits a moment for a next line (`HOLDS`) before the idle file
    // gives it up: poll until it has, with a deadline.
    let messages = |h: &Harness| -> Vec<(String,)> {
        h.rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", h.db.display())).await.unwrap();
            let rows =
                sqlx::query_as("SELECT message FROM events ORDER BY occurred_at").fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while messages(&h).len() < 3 && std::time::Instant::now() < deadline {
        h.poll();
    }
    h.stop();
    let messages = messages(&h);
    let attempts: Vec<String> =
        messages.iter().map(|(m,)| m.rsplit(' ').next().unwrap_or_default().to_string()).collect();
    assert_eq!(attempts, vec!["1", "2", "3"], "{messages:?}");
}

#[test]
fn a_file_renamed_into_place_keeps_its_unfinished_line_until_it_is_whole() {
    let mut h = Harness::new("app.log*", "read_grace = \"0s\"");
    let (head, tail) = halves(0, 60);
    h.append("app.log.tmp", &head);
    h.poll();
    rename(&h, "app.log.tmp", "app.log");
    h.poll();
    h.poll();
    h.append("app.log", &tail);
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..1);
    assert_eq!(h.parse_errors(), 0.0);
}

/// Within one run, a generation drained and closed (gone from the matched paths) that
/// comes back is resumed where it was, as after a restart: moved out and back, deleted
/// and written again with the same content, a link swapped back to it.
#[test]
fn a_file_that_leaves_and_comes_back_in_one_run_is_resumed_not_read_again() {
    // Moved out of the pattern and back.
    let mut h = Harness::new("app.log", "read_grace = \"0s\"");
    h.append("app.log", &lines(0..3));
    h.poll();
    rename(&h, "app.log", "away.txt");
    let r = h.poll();
    assert_eq!(r.files, 0, "drained and closed: {r:?}");
    rename(&h, "away.txt", "app.log");
    h.append("app.log", &lines(3..5));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..5);

    // Deleted, then written again with the same content and more.
    let mut h = Harness::new("app.log", "read_grace = \"0s\"");
    h.append("app.log", &lines(0..3));
    h.poll();
    std::fs::remove_file(h.path("app.log")).unwrap();
    h.poll();
    h.append("app.log", &(lines(0..3) + &lines(3..5)));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..5);
}

/// The same across a restart: a file away from the matched paths when passportd starts
/// (moved out before the restart, or while it was stopped) is still that generation when
/// it comes back, resumed where it was.
#[test]
fn a_file_away_at_start_up_that_comes_back_is_resumed_not_read_again() {
    // Moved out while running, or while stopped; back after the next start's first round.
    for moved_while_running in [true, false] {
        let mut h = Harness::new("app.log", "read_grace = \"0s\"");
        std::fs::create_dir(h.path("out")).unwrap();
        h.append("app.log", &lines(0..3));
        h.poll();
        if moved_while_running {
            rename(&h, "app.log", "out/away.txt");
            h.poll();
            h.stop();
        } else {
            h.stop();
            rename(&h, "app.log", "out/away.txt");
        }
        h.start();
        h.poll();
        rename(&h, "out/away.txt", "app.log");
        h.append("app.log", &lines(3..5));
        h.poll();
        h.stop();
        assert_exactly_once(&h.stored(), 0..5);
    }
}

#[cfg(unix)]
#[test]
fn a_link_swapped_back_to_a_file_read_before_resumes_it() {
    let mut h = Harness::new("current.log", "read_grace = \"0s\"");
    h.append("a.log", &lines(0..2));
    h.append("b.log", &lines(2..3));
    let point_at = |h: &Harness, target: &str| {
        let _ = std::fs::remove_file(h.path("current.log"));
        std::os::unix::fs::symlink(h.path(target), h.path("current.log")).unwrap();
    };
    point_at(&h, "a.log");
    h.poll();
    point_at(&h, "b.log");
    h.poll();
    point_at(&h, "a.log");
    h.append("a.log", &lines(3..4));
    h.poll();
    point_at(&h, "b.log");
    h.append("b.log", &lines(4..5));
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..5);
}

/// A checkpoint that covered only a first line every such file begins with (`log
/// stream`'s banner) is its own file's, found beside the old path after a rotation while
/// stopped, not the new file's that merely begins the same way.
#[test]
fn a_rotation_while_stopped_of_a_file_read_only_to_its_banner_loses_nothing() {
    let banner = format!("{}\n", " ".repeat(80));
    let mut h = Harness::new("app.log", "read_grace = \"0s\"");
    h.append("app.log", &banner);
    h.poll();
    h.stop();
    h.append("app.log", &lines(0..3));
    rename(&h, "app.log", "app.log.1");
    h.append("app.log", &(banner + &lines(3..5)));
    h.start();
    h.poll();
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..5);
}

/// A Passport message written line by line (a line-buffered `log stream > file`): the
/// tailer wakes between its lines and finds the file at its end, but the message waits a
/// moment for its next line instead of being cut from its Trace and Correlation ID lines.
#[test]
fn a_passport_message_written_line_by_line_is_one_record() {
    let mut h = Harness::new("mac.log", "format = \"passport\"");
    let head = "2026-03-04 08:15:06.700000-0800  mac-1 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] \
                AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.\n";
    h.append("mac.log", head);
    h.poll();
    h.append("mac.log", "Trace ID: 0f1e2d3c-4b5a-4697-8877-665544332211\n");
    h.poll();
    h.append("mac.log", "Correlation ID: F88C422B-CCA2-492B-83A5-6CC1057A40B2\nTimestamp: 2026-03-04 16:15:06Z\n");
    // Until the hold ends and the idle file gives the message up: one record, whole.
    poll_until_stored(&mut h, "the message", |rows| !rows.is_empty());
    assert_eq!(
        codes_and_correlations(&h),
        vec![(Some(7000218), Some("f88c422b-cca2-492b-83a5-6cc1057a40b2".to_string()))]
    );
    h.stop();
    assert_eq!(h.parse_errors(), 0.0);
}

/// A block-buffered writer's block may end inside the next message's first line, and the
/// rest come much later: the message before it is whole (the line being written starts
/// with a timestamp, a record of its own) and is stored once the file is idle, not held
/// until the next block.
#[test]
fn a_message_before_a_half_written_record_is_stored_once_idle() {
    let mut h = Harness::new("mac.log", "format = \"passport\"");
    let first = "2026-03-04 08:15:02.123456-0800  mac-1 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] \
                 Token request failed: AADSTS50126: Error validating credentials due to invalid username or password.\n";
    let second =
        "2026-03-04 08:15:03.200000-0800  mac-1 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] \
                  Token request failed: AADSTS50076: Due to a configuration change made by your administrator.\n";
    h.append("mac.log", &format!("{first}{}", &second[..80]));
    poll_until_stored(&mut h, "the whole first message", |rows| !rows.is_empty());
    assert_eq!(codes_and_correlations(&h), vec![(Some(50126), None)]);
    h.append("mac.log", &second[80..]);
    poll_until_stored(&mut h, "the second message", |rows| rows.len() >= 2);
    h.stop();
    assert_eq!(codes_and_correlations(&h), vec![(Some(50126), None), (Some(50076), None)]);
    assert_eq!(h.parse_errors(), 0.0);
}

/// A block-buffered writer may stop after any line of a message: one whose last line so
/// far is an Entra error's `Trace ID:` or `Correlation ID:` waits for the `Timestamp:` line
/// that ends that trailer, and is stored whole, its correlation id with it.
#[test]
fn a_message_cut_inside_its_entra_trailer_waits_for_the_rest() {
    let mut h = Harness::new("mac.log", "format = \"passport\"");
    let head = "2026-03-13 08:00:00.100000-0800  mac-1 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] \
                AADSTS50079: Due to a configuration change made by your administrator you must enroll in MFA.\r\n\
                Trace ID: 0f1e2d3c-4b5a-4697-8877-665544332211\r\n";
    h.append("mac.log", head);
    // Well past the hold of a message that is not waiting for its trailer (300 ms).
    poll_for(&mut h, std::time::Duration::from_millis(900));
    assert!(codes_and_correlations(&h).is_empty(), "stored before its trailer was whole");
    h.append("mac.log", "Correlation ID: 13131313-AAAA-4BBB-8CCC-000000000001\r\n");
    poll_for(&mut h, std::time::Duration::from_millis(900));
    assert!(codes_and_correlations(&h).is_empty(), "stored before its Timestamp line");
    h.append("mac.log", "Timestamp: 2026-03-13 16:00:00Z\r\n");
    poll_until_stored(&mut h, "the message", |rows| !rows.is_empty());
    h.stop();
    assert_eq!(
        codes_and_correlations(&h),
        vec![(Some(50079), Some("13131313-aaaa-4bbb-8ccc-000000000001".to_string()))]
    );
    assert_eq!(h.parse_errors(), 0.0);
}

/// A file emptied in place (`: > file`, no copy kept) while a message it held was waiting
/// for the rest of its body: the message was read before its bytes were destroyed, and is
/// stored, not dropped with them.
#[test]
fn a_held_message_survives_its_file_being_emptied_without_a_copy() {
    let mut h = Harness::new("mac.log", "format = \"passport\"");
    let held = "2026-05-04 08:17:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] Token request failed: {\"error\":\"invalid_grant\",\"error_description\":\
                \"AADSTS50126: Error validating credentials due to invalid username or password. Trace ID: 11\n";
    h.append("mac.log", held);
    poll_for(&mut h, std::time::Duration::from_millis(500));
    assert!(codes_and_correlations(&h).is_empty(), "held for the rest of its body");
    truncate(&h, "mac.log");
    h.append(
        "mac.log",
        "2026-05-04 08:18:02.123456-0800  localhost SecurityAgent[612]: (KandjiPassport) \
         [io.kandji.passport:auth] Token request failed: AADSTS50076: MFA required.\n",
    );
    poll_until_stored(&mut h, "both messages", |rows| rows.len() >= 2);
    h.stop();
    assert_eq!(codes_and_correlations(&h), vec![(Some(50126), None), (Some(50076), None)]);
}

/// A file rewritten in place with new content of the same size, its modification time set
/// back to what it was (or a file system whose mtime ticks coarsely): the status-change
/// time still tells, and the new content is read.
#[test]
fn a_same_size_rewrite_with_the_same_mtime_is_read() {
    let mut h = Harness::new("app.log", "");
    h.append("app.log", &lines(0..3));
    let mtime = std::fs::metadata(h.path("app.log")).unwrap().modified().unwrap();
    h.poll();
    let rewritten = lines(3..6);
    assert_eq!(rewritten.len(), lines(0..3).len());
    std::fs::write(h.path("app.log"), rewritten).unwrap();
    std::fs::File::options().write(true).open(h.path("app.log")).unwrap().set_modified(mtime).unwrap();
    h.poll();
    h.stop();
    assert_exactly_once(&h.stored(), 0..6);
}

/// A Passport message held for its next line when the daemon stops is not committed:
/// the next start reads it again from its checkpoint and joins the lines written meanwhile,
/// one record.
#[test]
fn a_passport_message_held_across_a_restart_is_one_record() {
    let mut h = Harness::new("mac.log", "format = \"passport\"");
    let head = "2026-03-04 08:15:06.700000-0800  mac-1 SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] \
                AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication to access.\n";
    h.append("mac.log", head);
    h.poll();
    h.restart();
    h.append("mac.log", "Correlation ID: 1B2C3D4E-0000-4000-8000-00000000AAAA\n");
    // Until the hold ends and the idle file gives the message up: one record, whole.
    poll_until_stored(&mut h, "the message", |rows| !rows.is_empty());
    assert_eq!(
        codes_and_correlations(&h),
        vec![(Some(50076), Some("1b2c3d4e-0000-4000-8000-00000000aaaa".to_string()))]
    );
    h.stop();
    assert_eq!(h.parse_errors(), 0.0);
}

/// `(code, correlation id)` of every stored event, in time order.
fn codes_and_correlations(h: &Harness) -> Vec<(Option<i64>, Option<String>)> {
    h.rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", h.db.display())).await.unwrap();
        let rows = sqlx::query_as("SELECT code, correlation_id FROM events ORDER BY occurred_at, id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    })
}

/// Polls `h` for `long` (a wait that must pass without something happening: a hold).
fn poll_for(h: &mut Harness, long: std::time::Duration) {
    let until = std::time::Instant::now() + long;
    while std::time::Instant::now() < until {
        h.poll();
    }
}

/// Polls `h` until `done` holds of the stored events, or panics at the deadline.
fn poll_until_stored(h: &mut Harness, what: &str, done: impl Fn(&[(Option<i64>, Option<String>)]) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        h.poll();
        let rows = codes_and_correlations(h);
        if done(&rows) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {rows:?}");
    }
}

/// `log stream > file` writes through a block buffer: a message whose token-endpoint body
/// is still open can wait seconds for the body's rest. The message is kept open for it
/// (not stored cut short, its rest read as orphan lines), and stored whole, once.
#[test]
fn a_message_whose_body_is_still_open_waits_for_the_rest_of_it() {
    let mut h = Harness::new("stream.log", "format = \"passport\"");
    let head = "2026-03-04 16:00:00.100000-0800  localhost SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] Token request failed: HTTP 400\n{\n  \"error\" : \"invalid_grant\",\n";
    let rest = "  \"error_description\" : \"AADSTS50126: Error validating credentials due to invalid username or \
                password. Correlation ID: 77658f33-1d7e-4a1b-9c1e-2f8a9b0c1d2e\",\n  \"error_codes\" : [50126]\n}\n\
                2026-03-04 16:00:05.100000-0800  localhost SecurityAgent[612]: (KandjiPassport) \
                [io.kandji.passport:auth] Token request failed: AADSTS50076: MFA required.\n";
    h.append("stream.log", head);
    // Well past the hold of a message that is not waiting for a body (300 ms).
    poll_for(&mut h, std::time::Duration::from_millis(900));
    assert!(codes_and_correlations(&h).is_empty(), "stored before its body was whole");
    h.append("stream.log", rest);
    poll_until_stored(&mut h, "both messages", |rows| rows.len() >= 2);
    h.stop();
    let rows = codes_and_correlations(&h);
    assert_eq!(
        rows,
        vec![(Some(50126), Some("77658f33-1d7e-4a1b-9c1e-2f8a9b0c1d2e".to_string())), (Some(50076), None)],
    );
    assert_eq!(h.parse_errors(), 0.0);
    assert_eq!(h.metric(r#"passportd_skipped_total{source="t"}"#), 0.0);
}

/// A CSV export whose last row has no newline: the row is read once the file has been
/// idle a while (a minute in the daemon), as `replay` reads it, and a newline written after
/// it adds nothing; one whose last cell a writer paused in is not read cut short.
#[test]
fn a_csv_exports_unterminated_last_row_is_read_once_idle() {
    let mut h = Harness::new("export.csv", "");
    // The daemon waits a minute; so long a test is not needed to show the rule.
    h.holding(passportd::ingest::reader::Holds {
        plain: std::time::Duration::from_millis(300),
        announced: std::time::Duration::from_secs(1),
        open_body: std::time::Duration::from_secs(2),
    });
    h.append(
        "export.csv",
        "TimeGenerated [UTC],ResultType,UserPrincipalName,Status,Id\r\n\
         2026-11-27T10:00:00Z,50126,a@contoso.example,\"{\"\"errorCode\"\":50126}\",r-1\r\n\
         2026-11-27T10:01:00Z,50076,b@contoso.example,\"{\"\"errorCode\"\":50076}\",r-2",
    );
    poll_until_stored(&mut h, "both rows", |rows| rows.len() >= 2);
    h.append("export.csv", "\r\n2026-11-27T10:02:00Z,50053,c@contoso.example,\"{\"\"errorCode\"\":50053}\",r-");
    // Polled for well over a second: the row, its last cell cut, waits for the rest.
    poll_for(&mut h, std::time::Duration::from_millis(1500));
    h.append("export.csv", "3\r\n");
    poll_until_stored(&mut h, "the third row", |rows| rows.len() >= 3);
    h.stop();
    let codes: Vec<Option<i64>> = codes_and_correlations(&h).into_iter().map(|(c, _)| c).collect();
    assert_eq!(codes, vec![Some(50126), Some(50076), Some(50053)]);
    assert_eq!(h.parse_errors(), 0.0, "the row's rest is no broken row of its own");
}

/// newsyslog and logrotate compress rotated generations: a `app.log*` pattern then
/// matches `app.log.0.gz`, whose lines were read before, as text. Compressed files are
/// left alone, also one first seen empty (the compressor still to write it): no parse
/// errors, nothing counted twice.
#[test]
fn compressed_rotated_files_are_left_alone() {
    let mut h = Harness::new("app.log*", "read_grace = \"0s\"");
    h.append("app.log", &(0..3).map(|i| line(i, 200)).collect::<String>());
    h.poll();
    rename(&h, "app.log", "app.log.0");
    h.append("app.log", &line(3, 200));
    h.poll();
    // The compressor writes the new file in two steps; the first round sees it empty.
    let gzip: Vec<u8> =
        [0x1f, 0x8b, 0x08, 0x00].iter().copied().chain((0..4000u32).map(|i| (i * 7 % 251) as u8)).collect();
    std::fs::write(h.path("app.log.0.gz"), b"").unwrap();
    h.poll();
    std::fs::OpenOptions::new().append(true).open(h.path("app.log.0.gz")).unwrap().write_all(&gzip).unwrap();
    std::fs::remove_file(h.path("app.log.0")).unwrap();
    // And one written whole, as bzip2 writes it.
    let mut bzip2 = b"BZh91AY&SY".to_vec();
    bzip2.extend((0..4000u32).map(|i| (i * 13 % 251) as u8));
    std::fs::write(h.path("app.log.1.bz2"), &bzip2).unwrap();
    for _ in 0..3 {
        h.poll();
    }
    h.restart();
    h.poll();
    // An inode once compressed that now holds text (freed and given to a new file, as
    // logrotate's delete-then-create can): judged anew, and read.
    let bz2 = std::fs::OpenOptions::new().write(true).truncate(true).open(h.path("app.log.1.bz2")).unwrap();
    drop(bz2);
    h.append("app.log.1.bz2", &(4..6).map(|i| line(i, 200)).collect::<String>());
    for _ in 0..3 {
        h.poll();
    }
    h.stop();
    assert_exactly_once(&h.stored(), 0..6);
    assert_eq!(h.parse_errors(), 0.0);
}

/// A message whose text holds a stray bracket (`[user carol…`) has no open body: it waits
/// the short hold, not the minute a token body still being written gets.
#[test]
fn a_stray_bracket_in_a_message_is_no_open_body() {
    let mut h = Harness::new("stream.log", "format = \"passport\"");
    h.append(
        "stream.log",
        "2026-03-04 01:29:59.367000-0800  localhost SecurityAgent[612]: (KandjiPassport) [io.kandji.passport:auth] \
         AADSTS50126: Error validating credentials due to invalid username or password. [user carol {retry\n",
    );
    poll_until_stored(&mut h, "the message", |rows| !rows.is_empty());
    h.stop();
    assert_eq!(codes_and_correlations(&h), vec![(Some(50126), None)]);
}
