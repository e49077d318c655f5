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
  let sending = false;

  function choose(name, value) {
    const input = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) input.checked = true;
  }

  function answer() {
    const call = form.querySelector('input[name="call"]:checked');
    const confidence = form.querySelector('input[name="confidence"]:checked');
    if (!call) return { error: "Choose real (R) or synthetic (S)." };
    if (needsConfidence && !confidence) return { error: "Choose a confidence from 1 to 5." };
    return {
      trial: form.dataset.trial,
      call: call.value,
      confidence: confidence ? Number(confidence.value) : null,
    };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function send(body) {
    const csrf = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
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
        const detail = await response.text();
        throw new Error(response.status === 403 ? "Your session has ended; please sign in again." : detail);
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

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || sending) return;
    const key = event.key.toLowerCase();
    if (key === "r") choose("call", "real");
    else if (key === "s") choose("call", "synthetic");
    else if (needsConfidence && /^[1-5]$/.test(key)) choose("confidence", key);
    else if (key === "enter") {
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
