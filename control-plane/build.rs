//! Generates the etcd v3 client the etcd store speaks (`proto/etcd.proto`,
//! a wire-compatible subset of etcd's API) with `protox`, so building needs
//! no system `protoc`. Only the control plane talks to etcd, so only it
//! compiles this.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/etcd.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
