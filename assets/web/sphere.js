// The viewer page's 360° view: the <video> of an equirectangular picture drawn as a texture
// through a shader that maps each pixel's view ray to the picture (WebGL2, WebGL1 fallback).
// The same conventions as the desktop view and the viewport messages: yaw 0 at the picture's
// centre column, positive to the right; pitch positive up; fov the vertical field of view.
// It redraws when a new video frame arrives or the view changes, never continuously.
"use strict";

const omnicastSphere = (() => {
  const MIN_FOV = 30;
  const MAX_FOV = 120;
  const wrap = (d) => ((((d + 180) % 360) + 360) % 360) - 180;
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  const VERTEX = `
    attribute vec2 corner;
    varying vec2 ndc;
    void main() { ndc = corner; gl_Position = vec4(corner, 0.0, 1.0); }`;
  // R = Ry(-yaw) * Rx(pitch): the view's ray in the world; world -z is the picture's centre.
  const FRAGMENT = `
    precision highp float;
    varying vec2 ndc;
    uniform sampler2D picture;
    uniform vec2 halfTan;   // tan(fov/2) * aspect, tan(fov/2)
    uniform vec2 yawPitch;  // radians
    const float PI = 3.141592653589793;
    void main() {
      vec3 v = normalize(vec3(ndc.x * halfTan.x, ndc.y * halfTan.y, -1.0));
      float cp = cos(yawPitch.y), sp = sin(yawPitch.y);
      v = vec3(v.x, cp * v.y - sp * v.z, sp * v.y + cp * v.z);
      float cy = cos(yawPitch.x), sy = sin(yawPitch.x);
      v = vec3(cy * v.x - sy * v.z, v.y, sy * v.x + cy * v.z);
      float lon = atan(v.x, -v.z);
      float lat = asin(clamp(v.y, -1.0, 1.0));
      // fract: longitude wraps at the back with no seam; no mipmaps, so no seam from derivatives.
      vec2 uv = vec2(fract(0.5 + lon / (2.0 * PI)), 0.5 - lat / PI);
      gl_FragColor = texture2D(picture, uv);
    }`;

  function compile(gl, type, source) {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
    return shader;
  }

  /**
   * Draws `video` on `canvas` as a view into the 360° picture. `onView` hears every change of
   * view ({yaw, pitch, fov, hfov} in degrees). Returns the view's controls.
   */
  function create(canvas, video, { yaw = 0, pitch = 0, fov = 90, onView = () => {} } = {}) {
    const gl = canvas.getContext("webgl2", { antialias: false, preserveDrawingBuffer: true })
      || canvas.getContext("webgl", { antialias: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("this browser has no WebGL");
    const webgl2 = typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext;
    // The GL objects, made again if the context is lost and restored (a GPU process restart).
    let texture = null;
    let uHalfTan = null;
    let uYawPitch = null;
    function setup() {
      const program = gl.createProgram();
      gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
      gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
      gl.useProgram(program);
      const buffer = gl.createBuffer();
      gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
      gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 3, -1, -1, 3]), gl.STATIC_DRAW);
      const corner = gl.getAttribLocation(program, "corner");
      gl.enableVertexAttribArray(corner);
      gl.vertexAttribPointer(corner, 2, gl.FLOAT, false, 0, 0);
      texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, texture);
      // WebGL1 cannot repeat a picture whose sides are not powers of two: the shader wraps.
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, webgl2 ? gl.REPEAT : gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      uHalfTan = gl.getUniformLocation(program, "halfTan");
      uYawPitch = gl.getUniformLocation(program, "yawPitch");
    }
    setup();

    const view = { yaw: wrap(yaw), pitch: clamp(pitch, -89, 89), fov: clamp(fov, MIN_FOV, MAX_FOV) };
    const stats = { draws: 0, frames: 0, allocations: 0, contextsLost: 0, webgl2 };
    let hasPicture = false;
    let textureSize = "";
    let drawQueued = false;
    let contextLost = false;
    canvas.addEventListener("webglcontextlost", (e) => {
      // Asking for the context back: without preventDefault it is never restored.
      e.preventDefault();
      contextLost = true;
      stats.contextsLost += 1;
    });
    canvas.addEventListener("webglcontextrestored", () => {
      contextLost = false;
      hasPicture = false;
      textureSize = "";
      setup();
      upload();
      redraw();
    });

    function aspect() {
      return canvas.width / Math.max(1, canvas.height);
    }

    function draw() {
      drawQueued = false;
      if (contextLost) return;
      const dpr = window.devicePixelRatio || 1;
      const w = Math.round(canvas.clientWidth * dpr);
      const h = Math.round(canvas.clientHeight * dpr);
      if (w && h && (canvas.width !== w || canvas.height !== h)) [canvas.width, canvas.height] = [w, h];
      gl.viewport(0, 0, canvas.width, canvas.height);
      if (!hasPicture) return;
      const t = Math.tan((view.fov * Math.PI) / 360);
      gl.uniform2f(uHalfTan, t * aspect(), t);
      gl.uniform2f(uYawPitch, (view.yaw * Math.PI) / 180, (view.pitch * Math.PI) / 180);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      stats.draws += 1;
    }

    function redraw() {
      if (!drawQueued) {
        drawQueued = true;
        requestAnimationFrame(draw);
      }
    }

    function changed() {
      const hfov = (2 * Math.atan(Math.tan((view.fov * Math.PI) / 360) * aspect()) * 180) / Math.PI;
      onView({ ...view, hfov });
      redraw();
    }

    // A new video frame: upload it and draw (requestVideoFrameCallback, else each animation
    // frame while the video plays). The texture's storage is allocated from the picture's size,
    // never from the video itself: Chromium may present a first frame while the video is still
    // paused (muted autoplay starts a moment later) and then uploads nothing without an error,
    // which would leave a texture allocated from it with no level 0, so every later upload fails
    // and the view stays black. With the storage there first, an upload that brings nothing only
    // leaves the previous picture, and the next frame (or the video starting to play) redoes it.
    function upload() {
      if (contextLost || video.readyState < 2 || !video.videoWidth) return;
      gl.bindTexture(gl.TEXTURE_2D, texture);
      const size = `${video.videoWidth}x${video.videoHeight}`;
      if (size !== textureSize) {
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, video.videoWidth, video.videoHeight, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
        textureSize = size;
        stats.allocations += 1;
      }
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, gl.RGBA, gl.UNSIGNED_BYTE, video);
      hasPicture = true;
      stats.frames += 1;
      draw();
    }
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      // Asked for again first: a failed upload must not end the loop.
      const onFrame = () => {
        video.requestVideoFrameCallback(onFrame);
        upload();
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      const poll = () => {
        requestAnimationFrame(poll);
        if (!video.paused) upload();
      };
      requestAnimationFrame(poll);
    }
    // A frame shown while paused may not have reached the texture: take it again once playing.
    video.addEventListener("playing", upload);

    // Pointer drag (mouse, touch, pen), pinch with two fingers, the wheel, arrow keys.
    const pointers = new Map();
    let pinch = null;
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture(e.pointerId);
      pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      canvas.focus();
    });
    canvas.addEventListener("pointermove", (e) => {
      const last = pointers.get(e.pointerId);
      if (!last) return;
      const now = { x: e.clientX, y: e.clientY };
      pointers.set(e.pointerId, now);
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        const distance = Math.hypot(a.x - b.x, a.y - b.y);
        if (pinch) set({ fov: (view.fov * pinch) / Math.max(1, distance) });
        pinch = distance;
        return;
      }
      // A drag across the view's height turns by its field of view: the picture follows.
      const perPixel = view.fov / Math.max(1, canvas.clientHeight);
      set({ yaw: view.yaw - (now.x - last.x) * perPixel, pitch: view.pitch + (now.y - last.y) * perPixel });
    });
    const up = (e) => {
      pointers.delete(e.pointerId);
      if (pointers.size < 2) pinch = null;
    };
    canvas.addEventListener("pointerup", up);
    canvas.addEventListener("pointercancel", up);
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      set({ fov: view.fov * Math.exp(e.deltaY * 0.001) });
    }, { passive: false });
    canvas.addEventListener("keydown", (e) => {
      const step = 5;
      const keys = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      const turn = keys[e.key];
      if (!turn) return;
      e.preventDefault();
      set({ yaw: view.yaw + turn[0], pitch: view.pitch + turn[1] });
    });
    new ResizeObserver(() => changed()).observe(canvas);

    /** Changes the view (any of yaw, pitch, fov, in degrees). */
    function set(next) {
      const before = { ...view };
      if (next.yaw !== undefined) view.yaw = wrap(next.yaw);
      if (next.pitch !== undefined) view.pitch = clamp(next.pitch, -89, 89);
      if (next.fov !== undefined) view.fov = clamp(next.fov, MIN_FOV, MAX_FOV);
      if (before.yaw !== view.yaw || before.pitch !== view.pitch || before.fov !== view.fov) changed();
    }

    changed();
    return { view, stats, set, redraw };
  }

  // Quaternions [x, y, z, w].
  const axis = (ax, deg) => {
    const h = (deg * Math.PI) / 360;
    const s = Math.sin(h);
    return [ax[0] * s, ax[1] * s, ax[2] * s, Math.cos(h)];
  };
  const mul = ([ax, ay, az, aw], [bx, by, bz, bw]) => [
    aw * bx + ax * bw + ay * bz - az * by,
    aw * by - ax * bz + ay * bw + az * bx,
    aw * bz + ax * by - ay * bx + az * bw,
    aw * bw - ax * bx - ay * by - az * bz,
  ];

  /**
   * Where a phone's back camera looks, as the rotation from the view to the world of the
   * viewport messages (x right of the picture's centre, y up, the centre along -z): from a
   * `deviceorientation` event's alpha, beta, gamma (degrees; Z-X'-Y'' from the Earth's East,
   * North, Up) and the screen's rotation (`screen.orientation.angle`). North is straight ahead
   * (the page turns it to where the view was when the phone took over).
   */
  function phoneRotation(alpha, beta, gamma, screenAngle = 0) {
    const earthFromDevice = mul(mul(axis([0, 0, 1], alpha), axis([1, 0, 0], beta)), axis([0, 1, 0], gamma));
    // The world: East, Up, South (-North is forward).
    const worldFromEarth = axis([1, 0, 0], -90);
    return mul(mul(worldFromEarth, earthFromDevice), axis([0, 0, 1], -screenAngle));
  }

  return { create, MIN_FOV, MAX_FOV, wrap, phoneRotation };
})();
