// "Verify here now": the desk page shows a QR code of a freshly minted upstream H5 link, counts
// down to the link's expiry, mints a new one when it runs out, and turns green by itself when
// the invitation is verified. Everything the script needs comes from data-* attributes of
// #desk (no inline script: the Content-Security-Policy may forbid it).
//
// Server contract (consent/admin_views.py):
//   POST data-mint-url   -> 201 {session, h5_link, expires_in, expires_at, qr} | 4xx/5xx {error}
//   GET  data-status-url?session=<id>
//                        -> {state: "waiting"|"verified"|"closed", label, message, session: {
//                            id, status, label, message, finished}}
(function () {
  "use strict";

  var desk = document.getElementById("desk");
  if (!desk) {
    return;
  }
  var POLL_MS = 2000;
  var TICK_MS = 250;
  var maxMints = parseInt(desk.dataset.maxMints, 10);

  var qr = desk.querySelector(".desk-qr");
  var link = desk.querySelector(".desk-link");
  var seconds = desk.querySelector(".desk-seconds");
  var bar = desk.querySelector(".desk-progress");
  var state = desk.querySelector(".desk-state");
  var again = desk.querySelector(".desk-again");

  var current = null; // {session, deadline (performance.now() ms), ttl (s)}
  var mints = 0;
  var minting = false;
  var finished = false;
  var tickTimer = null;
  var pollTimer = null;

  function show(mode, text) {
    desk.dataset.state = mode;
    state.textContent = text;
  }

  function stop(mode, text) {
    finished = true;
    window.clearInterval(tickTimer);
    window.clearInterval(pollTimer);
    again.hidden = true;
    show(mode, text);
  }

  function pause(text) {
    // Minting stops until staff ask for a new code; polling goes on (the person may be
    // finishing on a code shown earlier).
    current = null;
    desk.dataset.state = "paused";
    qr.classList.add("desk-qr-stale");
    seconds.textContent = "0";
    desk.dataset.secondsLeft = "0";
    state.textContent = text;
    again.hidden = false;
  }

  function mint() {
    if (minting || finished) {
      return;
    }
    minting = true;
    again.hidden = true;
    show("minting", desk.dataset.textMinting);
    fetch(desk.dataset.mintUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": desk.dataset.csrfToken, Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (result) {
        minting = false;
        if (finished) {
          return;
        }
        if (!result.ok) {
          pause(result.body.error || desk.dataset.textFailed);
          return;
        }
        var minted = result.body;
        mints += 1;
        current = {
          session: minted.session,
          deadline: performance.now() + minted.expires_in * 1000,
          ttl: minted.ttl,
        };
        qr.innerHTML = minted.qr; // the server's own SVG (consent/qr.py), no page data
        qr.classList.remove("desk-qr-stale");
        desk.dataset.h5Link = minted.h5_link;
        desk.dataset.session = String(minted.session);
        desk.dataset.expiresAt = minted.expires_at;
        link.textContent = minted.h5_link;
        bar.max = minted.ttl;
        show("waiting", desk.dataset.textWaiting);
        tick();
      })
      .catch(function () {
        minting = false;
        if (!finished) {
          pause(desk.dataset.textFailed);
        }
      });
  }

  function tick() {
    if (!current || finished) {
      return;
    }
    var left = Math.max(0, Math.ceil((current.deadline - performance.now()) / 1000));
    seconds.textContent = String(left);
    desk.dataset.secondsLeft = String(left);
    bar.value = left;
    if (left > 0) {
      return;
    }
    if (mints >= maxMints) {
      pause(desk.dataset.textIdle);
    } else if (!document.hidden) {
      mint(); // a hidden tab mints when it is shown again (visibilitychange below)
    }
  }

  function poll() {
    var url = desk.dataset.statusUrl + (current ? "?session=" + current.session : "");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (status) {
        if (finished) {
          return;
        }
        if (status.state === "verified") {
          stop("verified", status.message);
        } else if (status.state === "closed") {
          stop("closed", status.message);
        } else if (status.session && current && status.session.id === current.session) {
          if (status.session.finished) {
            // The code on screen was used and failed or expired upstream: offer a fresh one.
            pause(status.session.message);
          } else if (status.session.message) {
            state.textContent = status.session.message;
          }
        }
      })
      .catch(function () {
        // A missed poll is retried at the next interval; the page says nothing until then.
      });
  }

  again.addEventListener("click", function () {
    mints = 0;
    mint();
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && current && !finished) {
      tick();
    }
  });

  tickTimer = window.setInterval(tick, TICK_MS);
  pollTimer = window.setInterval(poll, POLL_MS);
  mint();
})();
