//! `dpop`: placeholder, see README.
