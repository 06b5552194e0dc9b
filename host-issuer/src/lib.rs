//! `host-issuer`: placeholder, see README.
