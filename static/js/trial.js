// Trial page: keyboard answers (R/S, 1-5, Enter) and a submit that survives a dropped
// connection. The answer goes to the API; a retry of the same answer is idempotent on the
// server, so the page retries until it gets an acknowledgement and only then moves on.
// Without JavaScript the form posts normally.
(function () {
  "use strict";
  const form = document.getElementById("answer-form");
  if (!form) return;
  const status = document.getElementById("status");
  const submit = document.getElementById("submit");
  const needsConfidence = form.dataset.confidence === "required";
  const csrf = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  const serving = Number(form.dataset.serving);
  // a timed trial (timed.js shows the tile for its exposure): no magnifier, no clock here
  const timed = form.dataset.design === "timed";
  // a paired trial: two tiles, answered by side; no magnifier
  const paired = form.dataset.design === "paired";
  let sending = false;
  let answered = false;

  // Time on screen: counted while the page is visible, from the moment the tile has loaded.
  // The page reports it when it is hidden or closed (a reload, a closed tab, another app), so
  // the server sums the servings of a trial; the answer carries this serving's time.
  let visibleMs = 0;
  let since = null;
  const tileImage = document.getElementById(paired ? "tile-left" : "tile");
  const now = () => performance.now();
  function startClock() {
    if (since === null && document.visibilityState === "visible") since = now();
  }
  function stopClock() {
    if (since !== null) visibleMs += now() - since;
    since = null;
  }
  const onScreen = () => Math.round(visibleMs + (since === null ? 0 : now() - since));
  function reportScreenTime() {
    if (answered || sending || timed) return;
    fetch(form.dataset.screenTime, {
      method: "POST",
      keepalive: true, // outlives the page being closed
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ trial: form.dataset.trial, serving, ms: onScreen() }),
    }).catch(() => {});
  }
  if (timed) {
    // the time on screen of a timed trial is its exposure, which timed.js measures
  } else if (tileImage.complete) startClock();
  else tileImage.addEventListener("load", startClock);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      stopClock();
      reportScreenTime();
    } else if (tileImage.complete && !timed) startClock();
  });
  window.addEventListener("pagehide", () => {
    stopClock();
    reportScreenTime();
  });

  function choose(name, value) {
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) input.checked = true;
  }

  function answer() {
    const call = form.querySelector('input[name="call"]:checked');
    const confidence = form.querySelector('input[name="confidence"]:checked');
    if (timed && form.dataset.shown !== "true") {
      const showing = ["loading", "exposing"].includes(form.dataset.shown);
      return { error: showing ? "Wait until the tile has been shown." : "Press Space to show the tile first." };
    }
    if (!call) {
      return { error: paired ? "Choose the synthetic tile: left (← or L) or right (→ or R)."
        : "Choose real (R) or synthetic (S)." };
    }
    if (needsConfidence && !confidence) return { error: "Choose a confidence from 1 to 5." };
    const body = {
      trial: form.dataset.trial,
      call: call.value,
      confidence: confidence ? Number(confidence.value) : null,
    };
    return timed ? body : { ...body, serving, on_screen_ms: onScreen() };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // The server's reason, in words: its JSON errors ({"detail": [...]} or {"field": [...]})
  // flattened, never the raw body
  async function refusal(response) {
    let body;
    try {
      body = await response.json();
    } catch (err) {
      return `The answer was not saved (error ${response.status}); please reload the page.`;
    }
    const messages = Object.values(body || {}).flat().filter((m) => typeof m === "string");
    const text = messages.join(" ") || `error ${response.status}`;
    const sentence = text.charAt(0).toUpperCase() + text.slice(1);
    return `The answer was not saved: ${sentence}${/[.!?]$/.test(sentence) ? "" : "."}`;
  }

  async function send(body) {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(form.dataset.api, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
          body: JSON.stringify(body),
        });
      } catch (err) {
        response = null; // network down or server restarting: retry the same answer
      }
      if (response && (response.ok || response.status === 409)) {
        // 409: this trial was answered already, in another window or tab; the server keeps
        // that answer and says so
        return { stored: await response.json(), conflict: response.status === 409 };
      }
      if (response && response.status < 500 && response.status !== 429) {
        if (response.status === 403) throw new Error("Your session has ended; please sign in again.");
        throw new Error(await refusal(response));
      }
      status.textContent = "Saving your answer… (connection problem, retrying)";
      await sleep(Math.min(500 * 2 ** attempt, 8000));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    const body = answer();
    if (body.error) {
      status.textContent = body.error;
      return;
    }
    sending = true;
    submit.disabled = true;
    status.textContent = "Saving…";
    try {
      const { stored, conflict } = await send(body);
      answered = true;
      if (conflict) {
        const kept = stored.confidence ? `${stored.call}, confidence ${stored.confidence}` : stored.call;
        status.textContent = `This tile was already answered in another window (${kept}); ` +
          "that answer is kept and this one was not saved. Moving on…";
        await sleep(3000);
      }
      window.location.replace(stored.next);
    } catch (err) {
      status.textContent = err.message;
      sending = false;
      submit.disabled = false;
    }
  });

  // The tile: as large as the study's magnification asks, or as fits the screen, at a whole
  // number of device pixels per image pixel, so that every image pixel is drawn the same size
  // (nearest neighbour, no resampling: real and synthetic tiles are scaled alike). The
  // magnifier multiplies that by 2, 3 or 4 inside a view of the same size, which scrolls.
  const img = document.getElementById("tile");
  const view = document.getElementById("tile-view");
  const magnifier = document.querySelector(".magnifier");
  const zoomIn = document.getElementById("zoom-in");
  const zoomOut = document.getElementById("zoom-out");
  const zoomLevel = document.getElementById("zoom-level");
  const hint = magnifier && magnifier.querySelector(".hint"); // (a paired trial has none)
  const ZOOMS = [1, 2, 3, 4];
  let zoom = 0;

  function fittedSide() {
    const native = img.naturalWidth || Number(img.dataset.native);
    const asked = Number(img.getAttribute("width"));
    const frame = view.parentElement;
    const style = getComputedStyle(frame);
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const room = frame.parentElement.clientWidth - padding;
    const dpr = window.devicePixelRatio || 1;
    const perPixel = Math.max(1, Math.floor((Math.min(asked, room) * dpr) / native));
    return (perPixel * native) / dpr;
  }

  function layout() {
    if (!img.naturalWidth && !img.dataset.native) return;
    const centreX = (view.scrollLeft + view.clientWidth / 2) / (img.clientWidth || 1);
    const centreY = (view.scrollTop + view.clientHeight / 2) / (img.clientHeight || 1);
    // measure the room with the tile at its own size (the study's magnification, shrunk to
    // fit), not at the size set last: a window made wider again gets the larger tile back
    view.style.width = view.style.height = "";
    img.style.width = img.style.height = img.style.maxWidth = "";
    const side = fittedSide();
    const shown = side * ZOOMS[zoom];
    view.style.width = `${side}px`;
    view.style.height = `${side}px`;
    img.style.maxWidth = "none";
    img.style.width = `${shown}px`;
    img.style.height = `${shown}px`;
    view.classList.toggle("zoomed", zoom > 0);
    view.scrollLeft = centreX * shown - side / 2;
    view.scrollTop = centreY * shown - side / 2;
    zoomLevel.textContent = `${ZOOMS[zoom]}x`;
    zoomIn.disabled = zoom === ZOOMS.length - 1;
    zoomOut.disabled = zoom === 0;
    hint.hidden = zoom === 0;
    magnifier.hidden = timed;
  }

  function setZoom(step) {
    zoom = Math.min(ZOOMS.length - 1, Math.max(0, zoom + step));
    layout();
  }

  if (img) { // (a paired trial has two tiles, fitted by CSS, and no magnifier)
    zoomIn.addEventListener("click", () => setZoom(1));
    zoomOut.addEventListener("click", () => setZoom(-1));
    window.addEventListener("resize", layout);
    if (img.complete) layout();
    else img.addEventListener("load", layout);

    // drag to move a zoomed view with a mouse (touch screens scroll it natively)
    let drag = null;
    view.addEventListener("pointerdown", (event) => {
      if (zoom === 0 || event.pointerType !== "mouse") return;
      drag = { x: event.clientX, y: event.clientY, left: view.scrollLeft, top: view.scrollTop };
      view.setPointerCapture(event.pointerId);
    });
    view.addEventListener("pointermove", (event) => {
      if (!drag) return;
      view.scrollLeft = drag.left - (event.clientX - drag.x);
      view.scrollTop = drag.top - (event.clientY - drag.y);
    });
    view.addEventListener("pointerup", () => { drag = null; });
  }

  const PAN = { arrowleft: [-1, 0], arrowright: [1, 0], arrowup: [0, -1], arrowdown: [0, 1] };

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || sending) return;
    const key = event.key.toLowerCase();
    if (img && !timed && (key === "+" || key === "=" || key === "-")) {
      event.preventDefault();
      setZoom(key === "-" ? -1 : 1);
      return;
    }
    if (PAN[key] && zoom > 0 && !form.contains(event.target)) {
      // (inside the form the arrows move between the answers, as usual)
      event.preventDefault();
      const [dx, dy] = PAN[key];
      view.scrollBy(dx * view.clientWidth / 4, dy * view.clientHeight / 4);
      return;
    }
    // the arrows pick a side, except on a confidence button, where they move between levels
    const onLevel = event.target instanceof HTMLInputElement && event.target.name !== "call";
    const arrow = key === "arrowleft" || key === "arrowright";
    if (paired && onLevel && arrow) return;
    if (paired && (key === "arrowleft" || key === "l")) choose("call", "left");
    else if (paired && (key === "arrowright" || key === "r")) choose("call", "right");
    else if (!paired && key === "r") choose("call", "real");
    else if (!paired && key === "s") choose("call", "synthetic");
    else if (needsConfidence && /^[1-5]$/.test(key)) choose("confidence", key);
    else if (key === "enter") {
      // Enter on a button or link outside the form (the magnifier, sign out) is theirs
      const target = event.target;
      if (target instanceof Element && target.closest("button, a") && !form.contains(target)) {
        return;
      }
      event.preventDefault();
      const body = answer();
      if (body.error) status.textContent = body.error; // the form's own check shows nothing
      else form.requestSubmit();
      return;
    } else return;
    event.preventDefault();
    status.textContent = "";
  });
})();
