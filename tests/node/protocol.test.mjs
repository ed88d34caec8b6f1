// The official socket.io-client, 4.x (Socket.IO v5) and 2.x (Engine.IO v3, the old classic
// pages), speaking the classic broadcast protocol to omnicast-signal.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { next, startServer, waitFor } from "../support/server.mjs";

let server;
const open = [];

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const s of open) s.close();
  await server?.stop();
});

function connect(kind, opts = {}) {
  const s =
    kind === "v4"
      ? ioV4(server.url, { transports: ["websocket"], reconnection: false, ...opts })
      : ioV2(server.url, { transports: ["websocket"], reconnection: false, forceNew: true, ...opts });
  open.push(s);
  return s;
}

const connected = (s) => (s.connected ? Promise.resolve() : next(s, "connect"));

for (const kind of ["v4", "v2"]) {
  test(`classic sequence with socket.io-client ${kind}`, async () => {
    const room = `classic-${kind}`;
    const query = kind === "v4" ? { auth: { room } } : { query: { room } };
    const caster = connect(kind, query);
    await connected(caster);
    // The server answers a broadcaster with its viewer count: only then is it registered (two
    // sockets' messages have no order between them).
    const registered = next(caster, "viewers");
    caster.emit("broadcaster");
    assert.deepEqual(await registered, [0]);
    const viewer = connect(kind, query);
    const other = connect(kind, query); // a bystander that must receive nothing relayed
    await Promise.all([connected(viewer), connected(other)]);
    const otherGot = [];
    for (const e of ["watcher", "offer", "answer", "candidate", "disconnectPeer", "bye"]) {
      other.on(e, (...args) => otherGot.push([e, ...args]));
    }

    const watcher = next(caster, "watcher");
    viewer.emit("watcher");
    assert.deepEqual(await watcher, [viewer.id]);

    // Payloads pass through unchanged, whatever their shape.
    const offer = { type: "offer", sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", extra: { nested: [1, null, "ü"] } };
    const gotOffer = next(viewer, "offer");
    caster.emit("offer", viewer.id, offer);
    assert.deepEqual(await gotOffer, [caster.id, offer]);

    const answer = { type: "answer", sdp: "v=0\r\n" };
    const gotAnswer = next(caster, "answer");
    viewer.emit("answer", caster.id, answer);
    assert.deepEqual(await gotAnswer, [viewer.id, answer]);

    const cand = { candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdpMid: "0", sdpMLineIndex: 0 };
    const gotCand = next(viewer, "candidate");
    caster.emit("candidate", viewer.id, cand);
    assert.deepEqual(await gotCand, [caster.id, cand]);

    // The broadcaster learns of the departure under both names the classic pages use.
    const viewerId = viewer.id;
    const gone = Promise.all([next(caster, "disconnectPeer"), next(caster, "bye")]);
    viewer.close();
    assert.deepEqual(await gone, [[viewerId], [viewerId]]);
    assert.deepEqual(otherGot, []);
  });
}

test("a viewer on the old client and a broadcaster on the new one interoperate", async () => {
  const caster = connect("v4", { auth: { room: "mixed" } });
  await connected(caster);
  const registered = next(caster, "viewers");
  caster.emit("broadcaster");
  await registered;
  const viewer = connect("v2", { query: { room: "mixed" } });
  await connected(viewer);
  const watcher = next(caster, "watcher");
  viewer.emit("watcher");
  const [id] = await watcher;
  const offer = next(viewer, "offer");
  caster.emit("offer", id, { type: "offer", sdp: "x" });
  assert.deepEqual(await offer, [caster.id, { type: "offer", sdp: "x" }]);
});

test("a bad message gets a clear error event and the connection stays usable", async () => {
  const s = connect("v4", { auth: { room: "errors" } });
  await connected(s);
  const err = next(s, "error");
  s.emit("offer", "no-such-socket-id", { sdp: "x" });
  const [e] = await err;
  assert.equal(e.code, "unknown_target");
  assert.equal(e.event, "offer");
  assert.match(e.message, /no socket 'no-such-socket-id'/);

  const err2 = next(s, "error");
  s.emit("offer", 42);
  assert.equal((await err2)[0].code, "bad_arguments");

  const noB = next(s, "noBroadcaster");
  s.emit("watcher");
  await noB;
  assert.ok(s.connected);
});

test("a room name the server refuses is reported as a connect error", async () => {
  const s = connect("v4", { auth: { room: "no spaces/or slashes" } });
  const [err] = await next(s, "connect_error");
  assert.match(err.message, /room name may only contain/);
});

test("metrics count relayed and rejected messages", async () => {
  const body = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name) => Number(body.match(new RegExp(`^${name} (\\d+)`, "m"))?.[1]);
  assert.ok(value('omnicast_signal_relayed_messages_total\\{event="offer"\\}') >= 3, body);
  assert.ok(value('omnicast_signal_rejected_messages_total\\{reason="unknown_target"\\}') >= 1, body);
  assert.ok(value("omnicast_signal_sockets") >= 1, body);
  await waitFor("healthz", async () => (await fetch(`${server.url}/healthz`)).ok);
});
