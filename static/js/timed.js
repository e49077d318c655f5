// Timed trial (HYPE): the tile is asked for only when the reader presses Space (or the
// button), decoded and laid out under an opaque mask, uncovered for the exposure the server
// asked for and covered again by a noise mask of the same size. requestAnimationFrame
// timestamps measure how long it was uncovered: the mask goes in one frame and comes back in
// the first frame at which the exposure, less half a frame, has passed (only the mask's
// visibility changes, so neither frame lays anything out). The page reports that duration
// and its frame interval once; the server sends the tile once, so a reload shows the mask.
// trial.js does the rest (answers, keys, submit, fitting the tile to the screen).
(function () {
  "use strict";
  const form = document.getElementById("answer-form");
  if (!form || form.dataset.design !== "timed") return;
  const img = document.getElementById("tile");
  const mask = document.getElementById("mask");
  const button = document.getElementById("show-tile");
  const status = document.getElementById("status");
  const csrf = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  const asked = Number(form.dataset.exposure);
  // waiting -> loading -> exposing -> shown; a reload after the exposure starts at shown
  let state = form.dataset.shown === "true" ? "shown" : "waiting";

  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));

  function paintMask(noise) {
    const ctx = mask.getContext("2d");
    const { width, height } = mask;
    if (!noise) {
      ctx.fillStyle = "#808080";
      ctx.fillRect(0, 0, width, height);
      return;
    }
    const pixels = ctx.createImageData(width, height);
    for (let i = 0; i < pixels.data.length; i += 4) {
      pixels.data[i] = Math.random() * 256;
      pixels.data[i + 1] = Math.random() * 256;
      pixels.data[i + 2] = Math.random() * 256;
      pixels.data[i + 3] = 255;
    }
    ctx.putImageData(pixels, 0, 0);
  }

  function setState(next) {
    state = next;
    form.dataset.shown = next === "shown" ? "true" : next; // trial.js reads it on submit
  }

  function ended(message) {
    setState("shown");
    mask.setAttribute("aria-label", "Mask: the tile has been shown");
    if (button) button.closest(".exposure-start").hidden = true;
    status.textContent = message;
  }

  function report(displayed, frameMs) {
    fetch(form.dataset.display, {
      method: "POST",
      keepalive: true, // a page closed right after the exposure still reports it
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({
        trial: form.dataset.trial,
        serving: Number(form.dataset.serving),
        ms: Math.round(displayed * 10) / 10,
        frame_ms: Math.round(frameMs * 100) / 100,
      }),
    }).catch(() => {});
  }

  async function expose() {
    if (state !== "waiting") return;
    setState("loading");
    if (button) button.disabled = true;
    status.textContent = "";
    img.src = img.dataset.src;
    try {
      await img.decode(); // fetched and decoded before it is uncovered: no partial tile
    } catch (err) {
      paintMask(true);
      ended("The tile could not be shown (it is sent once only, or the connection failed). " +
        "Reload the page: if the tile had reached the page, answer from what you saw.");
      return;
    }
    window.dispatchEvent(new Event("resize")); // trial.js fits the decoded tile to the screen
    // the display's frame interval, from a few frames before the tile is uncovered (these
    // frames also draw the laid-out tile under the mask)
    const stamps = [];
    for (let i = 0; i < 6; i++) stamps.push(await frame());
    const gaps = stamps.slice(1).map((t, i) => t - stamps[i]).sort((a, b) => a - b);
    const frameMs = gaps[Math.floor(gaps.length / 2)];
    setState("exposing");
    const up = await frame();
    mask.classList.add("uncovered");
    let down = await frame();
    while (down - up < asked - frameMs / 2) down = await frame();
    mask.classList.remove("uncovered");
    paintMask(true);
    img.removeAttribute("src");
    report(down - up, frameMs);
    ended("");
  }

  paintMask(state === "shown");
  if (button) button.addEventListener("click", expose);
  document.addEventListener("keydown", (event) => {
    if (event.key !== " " || event.altKey || event.ctrlKey || event.metaKey) return;
    if (state !== "shown") {
      event.preventDefault(); // no scrolling, no button or answer toggled before the answer
      expose();
    }
  });
})();
