//! The clawfleet gRPC contracts: messages, clients and servers generated from `proto/`,
//! plus the encoded descriptor set that feeds gRPC server reflection.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod json; // JSON <-> google.protobuf.Struct/Value for gateway params and results

/// Encoded `FileDescriptorSet` of every clawfleet proto and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/clawfleet_descriptor.bin"));

/// `clawfleet.common.v1`: phases, plans, paging.
pub mod common {
    pub mod v1 {
        tonic::include_proto!("clawfleet.common.v1");
    }
}

/// `clawfleet.lifecycle.v1`: the InstanceService.
pub mod lifecycle {
    pub mod v1 {
        tonic::include_proto!("clawfleet.lifecycle.v1");
    }
}

/// `clawfleet.channels.v1`: the ChannelService.
pub mod channels {
    pub mod v1 {
        tonic::include_proto!("clawfleet.channels.v1");
    }
}

/// `clawfleet.bridge.v1`: the GatewayBridgeService.
pub mod bridge {
    pub mod v1 {
        tonic::include_proto!("clawfleet.bridge.v1");
    }
}

/// `clawfleet.auth.v1`: the AuthService.
pub mod auth {
    pub mod v1 {
        tonic::include_proto!("clawfleet.auth.v1");
    }
}
