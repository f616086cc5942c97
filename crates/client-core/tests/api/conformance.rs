//! The conformance test's reading of the suite's output: a WARNING or
//! FAILURE check line fails the run even when the suite's OVERALL line says
//! PASSED.

use crate::support::suite::conformance_verdict;

const CLEAN: &str = "Starting scenario: sse-retry\nChecks:\n\
    \u{1b}[90m2026-11-30T11:13:57.871Z\u{1b}[0m [incoming-request   ] \u{1b}[36mINFO   \u{1b}[0m Received GET\n\
    \u{1b}[90m2026-11-30T11:13:57.910Z\u{1b}[0m [client-sse-last-event-id] \u{1b}[32mSUCCESS\u{1b}[0m Client SHOULD send Last-Event-ID\n\
    \nTest Results:\nPassed: 3/3, 0 failed, 0 warnings\n\n\u{2705} OVERALL: PASSED\n";

#[test]
fn a_clean_run_passes() {
    assert_eq!(conformance_verdict(true, CLEAN), None);
}

#[test]
fn a_warning_line_fails_the_run_even_when_overall_passed() {
    let warned = CLEAN.replace(
        "\u{1b}[32mSUCCESS\u{1b}[0m Client SHOULD",
        "\u{1b}[33mWARNING\u{1b}[0m Client SHOULD",
    );
    assert_eq!(
        conformance_verdict(true, &warned).unwrap(),
        "checks flagged:\n2026-11-30T11:13:57.910Z [client-sse-last-event-id] WARNING Client SHOULD send Last-Event-ID"
    );
    let failed = CLEAN.replace("\u{1b}[32mSUCCESS", "\u{1b}[31mFAILURE");
    assert!(
        conformance_verdict(true, &failed)
            .unwrap()
            .contains("] FAILURE Client SHOULD"),
    );
}

#[test]
fn the_summary_and_the_exit_status_count_too() {
    let counted = CLEAN.replace("0 failed, 0 warnings", "0 failed, 1 warnings");
    assert_eq!(
        conformance_verdict(true, &counted).unwrap(),
        "the summary counts failures or warnings"
    );
    assert_eq!(
        conformance_verdict(false, CLEAN).unwrap(),
        "the run did not pass"
    );
}
