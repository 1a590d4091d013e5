//! Reading the key for `importfs login`: from the terminal without echo,
//! or from standard input when it is not a terminal (`importfs login <FILE`,
//! a pipe from a password manager).
//!
//! Subtle: echo is turned off with termios on standard input itself
//! (tcgetattr(3)/tcsetattr(3), POSIX, the same calls on Linux and macOS;
//! what `read -s` and ssh's readpassphrase do), `ECHONL` kept so that the
//! newline still shows, and the old settings are put back by a guard on
//! every path out. That is a dozen lines on `libc`, which the crate already
//! uses, instead of one more dependency. A Ctrl-C at the prompt ends the
//! process before the guard runs; the shell restores its own terminal
//! modes when it prints its prompt.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Read, Write};

/// The longest key read from a pipe (a key is a few dozen characters).
const MAX_INPUT: u64 = 64 * 1024;

/// Read the key: with a prompt and no echo from a terminal, else the whole
/// of standard input. Trimmed; never empty.
pub fn read_key(prompt: &str) -> Result<String> {
    let text = if std::io::stdin().is_terminal() {
        read_hidden(prompt)?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_INPUT)
            .read_to_string(&mut text)
            .context("cannot read the key from standard input")?;
        text
    };
    let key = text.trim();
    if key.is_empty() {
        bail!("no key given: paste the key (it is in the Import.io dashboard under User Settings)");
    }
    if key.chars().any(char::is_whitespace) {
        bail!("that is not one key: the input holds spaces or several lines");
    }
    Ok(key.to_owned())
}

/// Puts the terminal's settings back when dropped.
struct Restore(libc::termios);

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: tcsetattr reads the termios we saved from this same fd.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.0) };
    }
}

/// One line from the terminal on stdin, typed without echo.
fn read_hidden(prompt: &str) -> Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it in.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open (stdin is a terminal) and term is a valid termios.
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read the terminal's settings");
    }
    let restore = Restore(term);
    term.c_lflag &= !libc::ECHO;
    term.c_lflag |= libc::ECHONL;
    // SAFETY: as above; term is the saved settings less echo.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot turn off the terminal's echo");
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the key from the terminal")?;
    drop(restore);
    Ok(line)
}
