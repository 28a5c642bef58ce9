//! The RingDB wire contract: messages and gRPC services shared by nodes, clients and tools.
//!
//! Only generated code and the descriptor set live here; no server logic.

/// Version 1 of the protocol.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("ringdb.v1");
}

/// Encoded `FileDescriptorSet` of every RingDB proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ringdb_descriptor.bin"));
