//! Integration tests: the real server, in-process, over real HTTP and WebSocket.
//! One binary for every area keeps builds fast on small machines.
//!
//! - `accounts`: authenticate, refresh, logout, account, token forgery, bad bodies
//! - `notifications`: core send -> sockets -> REST list/delete, cursor rules, send_all
//! - `socket`: handshake, envelopes, limits, single_socket
//! - `cluster`: several nodes on one PostgreSQL database
//! - `console`: the admin console's routes on their own port
//! - `crash`: acknowledged sends survive SIGKILL of the real binary; SIGTERM stops gracefully
//! - `overload`: a socket that never reads, an RPC flood beyond the Lua queue
//! - `ops`: structured logs (request ids, no secrets) and Prometheus metrics of the real binary
//! - `durability`: what survives a restart
//! - `faults`: a full or read-only disk under the real binary (needs root to mount a tmpfs)
//! - `openapi`: `/openapi.json` describes every route, and each answers as described
//! - `postgres`: the whole server on PostgreSQL (needs a PostgreSQL server, see support::pg_url)
//! - `reload`: hot reload, the runtime status endpoint, `tidings check`
//! - `chat`: direct chat and rooms over the socket, -1, history
//! - `friends`: invite, accept, remove, block, the list, -2/-3/-9
//! - `groups`: create, join, roles, leave, lists, -4/-5
//! - `hostile`: the hostile-input matrix over REST and the socket (bad bodies, frames, tokens, other players' notifications, slow-loris, many sockets)
//! - `inbox`: read/seen state, counts, filtered lists, inbox frames, the `nk` functions
//! - `lua`: modules, the `nk` API, RPC over HTTP and socket, sandbox, limits, hooks
//! - `store_contract`: the Store trait's promises, on SQLite and on PostgreSQL

mod accounts;
mod chat;
mod cluster;
mod console;
mod crash;
mod durability;
mod faults;
mod friends;
mod groups;
mod hostile;
mod inbox;
mod lua;
mod notifications;
mod openapi;
mod ops;
mod overload;
mod postgres;
mod reload;
mod socket;
mod store_contract;
mod support;
