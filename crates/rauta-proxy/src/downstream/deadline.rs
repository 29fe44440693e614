//! `header_read_timeout` without a timer per request: one sleep per connection, re-armed only when it fires.
//!
//! Arming a timer for every request head costs a timer-wheel insert and removal per request. Instead the
//! connection keeps one sleep that fires every `timeout / PERIODS` and counts the head waits it has seen: if
//! the same wait is still going on after `PERIODS` firings, it has lasted at least `timeout` (the wait began
//! before the first of them) and at most `timeout + timeout / PERIODS`. Between firings the hot path only
//! bumps a counter; the sleep is polled only while the connection waits for a head.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Firings per timeout: the deadline is precise to `timeout / PERIODS`.
const PERIODS: u32 = 4;

/// The per-connection head deadline.
#[derive(Debug)]
pub(super) struct HeadDeadline {
    sleep: Pin<Box<Sleep>>,
    period: Duration,
    /// Number of the current (or last) head wait.
    wait: u64,
    /// The wait in progress at the last firing.
    seen: u64,
    /// Firings during `seen`.
    strikes: u32,
    /// The waker the sleep was last polled (and so registered) with. While the sleep has not fired and the
    /// task's waker is the same, polling again would only register it again: it is skipped.
    armed: Option<Waker>,
}

impl HeadDeadline {
    /// A deadline for a connection that starts waiting for its first head now.
    pub(super) fn new(timeout: Duration) -> Self {
        let period = timeout / PERIODS;
        Self {
            sleep: Box::pin(tokio::time::sleep(period)),
            period,
            wait: 1,
            seen: 1,
            strikes: 0,
            armed: None,
        }
    }

    /// A new head wait begins (after a response, before reading the next request).
    pub(super) fn next_wait(&mut self) {
        self.wait += 1;
    }

    /// Whether the current head wait has run out of time. Registers the task to be woken at the next firing.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        // Runs once per request: skip the timer poll when it cannot change anything (not fired, same task).
        // `is_elapsed` turns true when the sleep fires, before it wakes the task.
        let same_task = self.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same_task && !self.sleep.is_elapsed() {
            return false;
        }
        if !same_task {
            self.armed = Some(cx.waker().clone());
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            if self.wait == self.seen {
                self.strikes += 1;
                if self.strikes >= PERIODS {
                    return true;
                }
            } else {
                // The wait began after the previous firing (or the sleep was not polled while requests were
                // being served): it has not yet lasted a full period.
                self.seen = self.wait;
                self.strikes = 0;
            }
            self.sleep.as_mut().reset(Instant::now() + self.period);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;

    /// Let `ms` milliseconds pass in 50 ms steps, polling after each as the woken connection task would;
    /// returns after how many milliseconds the wait expired, if it did.
    async fn run(d: &mut HeadDeadline, ms: u64) -> Option<u64> {
        for step in 1..=ms / 50 {
            tokio::time::advance(Duration::from_millis(50)).await;
            if poll_fn(|cx| Poll::Ready(d.poll_expired(cx))).await {
                return Some(step * 50);
            }
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_expires_between_one_and_one_and_a_quarter_timeouts() {
        let mut d = HeadDeadline::new(Duration::from_secs(4));
        let expired = run(&mut d, 6000).await.expect("expires");
        assert!((4000..=5000).contains(&expired), "{expired}");
    }

    #[tokio::test(start_paused = true)]
    async fn each_new_wait_gets_the_full_timeout() {
        let mut d = HeadDeadline::new(Duration::from_secs(4));
        // Requests keep arriving every 0.9 s for a minute: no wait lasts long, the connection never expires.
        for _ in 0..66 {
            assert_eq!(run(&mut d, 900).await, None);
            d.next_wait();
        }
        // Then a wait that lasts: it expires after at least 4 s and at most 5 s.
        let expired = run(&mut d, 6000).await.expect("expires");
        assert!((4000..=5000).contains(&expired), "{expired}");
    }
}
