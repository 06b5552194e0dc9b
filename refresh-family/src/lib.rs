//! `refresh-family`: placeholder, see README.
