// The data-channel protocol as the README documents it ("Data channels"): JSON text, one object
// per message, at most 16 KiB. The broadcaster opens `omnicast` (reliable, ordered) and
// `omnicast-viewport` (unordered, no retransmissions) on every viewer connection.
"use strict";

const omnicastChannels = (() => {
  const CONTROL = "omnicast";
  const VIEWPORT = "omnicast-viewport";
  const MAX_BYTES = 16 * 1024;
  const encoder = new TextEncoder();

  /** Degrees wrapped into [-180, 180). */
  const wrap = (d) => ((((d + 180) % 360) + 360) % 360) - 180;

  const kindOf = (v) =>
    v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`;

  class Refused extends Error {
    constructor(kind, message) {
      super(message);
      this.kind = kind; // "too_large" | "malformed" | "unknown"
    }
  }

  /** The message's object and type, or Refused. */
  function envelope(data) {
    if (typeof data !== "string") throw new Refused("malformed", "binary messages are not part of the protocol: send JSON text");
    const bytes = encoder.encode(data).length;
    if (bytes > MAX_BYTES) throw new Refused("too_large", `message of ${bytes} bytes is over the limit of ${MAX_BYTES}`);
    let m;
    try {
      m = JSON.parse(data);
    } catch (e) {
      throw new Refused("malformed", `not a JSON object: ${e.message}`);
    }
    if (m === null || typeof m !== "object" || Array.isArray(m)) {
      throw new Refused("malformed", `not a JSON object: expected an object, got ${kindOf(m)}`);
    }
    if (typeof m.type !== "string") throw new Refused("malformed", 'not a JSON object: no "type"');
    return m;
  }

  function number(m, kind, name, { required = false, min = -Infinity, max = Infinity } = {}) {
    const v = m[name];
    if (v === undefined || v === null) {
      if (required) throw new Refused("malformed", `bad ${kind} message: "${name}" is missing`);
      return null;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Refused("malformed", `bad ${kind} message: "${name}" must be a number, got ${kindOf(v)}`);
    }
    if (v < min || v > max) throw new Refused("malformed", `bad ${kind} message: "${name}" ${v} is outside [${min}, ${max}]`);
    return v;
  }

  /** Yaw, pitch, roll (degrees) of the rotation q = [x, y, z, w] from the viewer's camera
   * (looking along −z, y up) to the world (x right of the picture's centre, y up). */
  function fromQuaternion(q) {
    const n = Math.hypot(...q);
    if (!(n > 1e-9)) return null;
    const [x, y, z, w] = q.map((c) => c / n);
    const rotate = ([vx, vy, vz]) => {
      const c1 = [y * vz - z * vy, z * vx - x * vz, x * vy - y * vx];
      const c2 = [y * c1[2] - z * c1[1], z * c1[0] - x * c1[2], x * c1[1] - y * c1[0]];
      return [vx + 2 * (w * c1[0] + c2[0]), vy + 2 * (w * c1[1] + c2[1]), vz + 2 * (w * c1[2] + c2[2])];
    };
    const f = rotate([0, 0, -1]);
    const up = rotate([0, 1, 0]);
    const pitch = Math.asin(Math.max(-1, Math.min(1, f[1])));
    const yaw = Math.hypot(f[0], f[2]) > 1e-9 ? Math.atan2(f[0], -f[2]) : Math.atan2(-Math.sign(f[1]) * up[0], Math.sign(f[1]) * up[2]);
    const [sy, cy, sp, cp] = [Math.sin(yaw), Math.cos(yaw), Math.sin(pitch), Math.cos(pitch)];
    const forward = [sy * cp, sp, -cy * cp];
    const right = [cy, 0, sy];
    const levelUp = [right[1] * forward[2] - right[2] * forward[1], right[2] * forward[0] - right[0] * forward[2], right[0] * forward[1] - right[1] * forward[0]];
    const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    const roll = Math.atan2(dot(up, right), dot(up, levelUp));
    const deg = 180 / Math.PI;
    return { yaw: wrap(yaw * deg), pitch: pitch * deg, roll: wrap(roll * deg) };
  }

  /** What a viewer sent, or throws Refused. */
  function parseViewer(data) {
    const m = envelope(data);
    switch (m.type) {
      case "viewport": {
        const t = number(m, "viewport", "t", { required: true, min: 0 });
        const fov = number(m, "viewport", "fov", { min: 1, max: 360 });
        let view;
        if (m.q !== undefined) {
          if (!Array.isArray(m.q) || m.q.length !== 4 || !m.q.every((c) => typeof c === "number" && Number.isFinite(c))) {
            throw new Refused("malformed", 'bad viewport message: "q" must be [x, y, z, w]');
          }
          view = fromQuaternion(m.q);
          if (!view) throw new Refused("malformed", 'bad viewport message: "q" is not a rotation (zero length)');
        } else {
          view = {
            yaw: wrap(number(m, "viewport", "yaw", { required: true, min: -360, max: 360 })),
            pitch: number(m, "viewport", "pitch", { required: true, min: -90, max: 90 }),
            roll: wrap(number(m, "viewport", "roll", { min: -360, max: 360 }) ?? 0),
          };
        }
        return { type: "viewport", t, ...view, fov };
      }
      case "hello":
        if (m.control !== undefined && m.control !== null && typeof m.control !== "string") {
          throw new Refused("malformed", `bad hello message: "control" must be a string, got ${kindOf(m.control)}`);
        }
        return { type: "hello", control: m.control ?? null };
      case "message":
        number(m, "message", "t", { required: true, min: 0 });
        if (!("data" in m)) throw new Refused("malformed", 'bad message message: "data" is missing');
        return { type: "message", t: m.t, data: m.data };
      default:
        throw new Refused("unknown", `unknown message type ${JSON.stringify(m.type.slice(0, 64))}`);
    }
  }

  /** What the broadcaster sent, or throws Refused. */
  function parseBroadcaster(data) {
    const m = envelope(data);
    switch (m.type) {
      case "welcome":
        if (typeof m.control !== "boolean") throw new Refused("malformed", 'bad welcome message: "control" must be true or false');
        return m;
      case "telemetry":
        number(m, "telemetry", "t", { required: true, min: 0 });
        return m;
      case "projection":
        if (m.projection !== "flat" && m.projection !== "equirect") {
          throw new Refused("malformed", 'bad projection message: "projection" must be "flat" or "equirect"');
        }
        return m;
      case "error":
        if (typeof m.message !== "string") throw new Refused("malformed", 'bad error message: "message" must be a string');
        return m;
      default:
        throw new Refused("unknown", `unknown message type ${JSON.stringify(m.type.slice(0, 64))}`);
    }
  }

  /** Opens the broadcaster's two channels on `pc` (before its offer). */
  function open(pc) {
    return {
      control: pc.createDataChannel(CONTROL, { ordered: true }),
      viewport: pc.createDataChannel(VIEWPORT, { ordered: false, maxRetransmits: 0 }),
    };
  }

  /** Text typed by a person: JSON if it parses, else the text itself. */
  const typed = (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };

  return { CONTROL, VIEWPORT, MAX_BYTES, Refused, parseViewer, parseBroadcaster, open, typed, wrap, fromQuaternion };
})();
