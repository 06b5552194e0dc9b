//! `session-verify`: placeholder, see README.
