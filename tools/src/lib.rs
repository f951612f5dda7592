//! The load-test server (`scripts/bench-server`) and the soak test (`scripts/soak`) of
//! redis-cached: binaries in `src/bin/`; this library holds what is tested on its own, the
//! soak's [`history`] checker.

pub mod history;
