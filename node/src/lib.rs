//! A RingDB node: the pure cores (`ring`, `version`), then storage, cluster membership,
//! the coordinator, peer transport and the gRPC API, each knowing only the layers before it.

pub mod ring;
pub mod version;
pub mod storage;
