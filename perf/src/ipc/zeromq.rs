//! ZeroMQ over `ipc://` (a Unix socket) between two processes.

use super::{ping_loop, ready, Checker, Cleanup, Peer, CAPACITY};
use crate::pin::Cores;
use hdrhistogram::Histogram;

/// The parent pushes `n` u64s through a PUSH socket, high-water mark at the other cases'
/// queue size.
pub fn throughput(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Option<f64> {
    let path = format!("/tmp/{name}.ipc");
    cleanup.0.push(path.clone());
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::PUSH).expect("socket");
    socket.set_sndhwm(CAPACITY as i32).expect("hwm");
    socket.bind(&format!("ipc://{path}")).expect("bind");
    let peer = Peer::start("throughput", "zeromq ipc", &path, n, cores);
    for i in 0..n {
        socket.send(&i.to_le_bytes()[..], 0).expect("send");
    }
    let rate = peer.finish("zeromq ipc");
    drop(socket);
    rate
}

fn u64_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

pub fn child_throughput(path: &str, n: u64, checker: &mut Checker) {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::PULL).expect("socket");
    socket.set_rcvhwm(CAPACITY as i32).expect("hwm");
    socket.connect(&format!("ipc://{path}")).expect("connect");
    ready();
    while checker.expected < n {
        let bytes = socket.recv_bytes(0).expect("recv");
        checker.check(u64_of(&bytes), "zeromq ipc");
    }
}

/// Pings through a PAIR socket, answered through the same socket.
pub fn pingpong(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Histogram<u64> {
    pingpong_as(zmq::PAIR, "zeromq ipc", name, cores, n, cleanup)
}

/// Round trips through a REQ socket to a REP socket in the child: ZeroMQ's request-reply.
pub fn request_reply(name: &str, cores: Cores, n: u64, cleanup: &mut Cleanup) -> Histogram<u64> {
    pingpong_as(zmq::REQ, REQ_REP, name, cores, n, cleanup)
}

/// The system name of ZeroMQ's request-reply case.
pub const REQ_REP: &str = "zeromq REQ/REP ipc";

/// Ping-pong with this side's socket of `kind` (the child takes the matching one).
fn pingpong_as(
    kind: zmq::SocketType,
    system: &str,
    name: &str,
    cores: Cores,
    n: u64,
    cleanup: &mut Cleanup,
) -> Histogram<u64> {
    let path = format!("/tmp/{name}.ipc");
    cleanup.0.push(path.clone());
    let ctx = zmq::Context::new();
    let socket = ctx.socket(kind).expect("socket");
    socket.bind(&format!("ipc://{path}")).expect("bind");
    let peer = Peer::start("pingpong", system, &path, n, cores);
    let h = ping_loop(
        n,
        system,
        |i| socket.send(&i.to_le_bytes()[..], 0).expect("send"),
        || u64_of(&socket.recv_bytes(0).expect("recv")),
    );
    peer.finish(system);
    h
}

pub fn child_pingpong(system: &str, path: &str, n: u64) {
    let kind = if system == REQ_REP { zmq::REP } else { zmq::PAIR };
    let ctx = zmq::Context::new();
    let socket = ctx.socket(kind).expect("socket");
    socket.connect(&format!("ipc://{path}")).expect("connect");
    ready();
    for _ in 0..n {
        let bytes = socket.recv_bytes(0).expect("recv");
        socket.send(bytes, 0).expect("send");
    }
}
