// The references page (/references/): copy buttons and the selection that builds a content array.
//
// Nothing is copied from the page itself: every button posts to the copy endpoint, which
// records the copy (who, which assets, for which project) and only then answers the text.
// The page says how many references of each kind one request takes (data-max-*).
(function () {
  "use strict";

  var root = document.getElementById("references");
  if (!root) {
    return;
  }
  var KINDS = ["image", "video", "audio"];
  var WORDS = { image: "reference images", video: "reference videos", audio: "reference audio clips" };
  var max = {};
  KINDS.forEach(function (kind) {
    max[kind] = parseInt(root.getAttribute("data-max-" + kind), 10);
  });
  var status = root.querySelector("[data-status]");
  var arrayButton = root.querySelector("[data-copy-array]");
  var arrayProject = root.querySelector("[data-selection-project]");
  var selectionCount = root.querySelector("[data-selection-count]");
  var selectionProblem = root.querySelector("[data-selection-problem]");
  // Asset ids in the order they were selected: @image1 is the first image chosen.
  var selectedOrder = [];

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("ref-error", Boolean(isError));
  }

  function rows() {
    return Array.prototype.slice.call(root.querySelectorAll("tr[data-asset-id]"));
  }

  function rowOf(assetId) {
    return root.querySelector('tr[data-asset-id="' + assetId + '"]');
  }

  // --- Asking the server: the ledger row is written before any text comes back -------------

  function requestCopy(payload) {
    return fetch(root.dataset.copyUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": root.dataset.csrfToken
      },
      body: JSON.stringify(payload)
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        throw new Error("Your session has ended: reload the page and sign in again.");
      }
      return response.json().then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || "The copy was refused.");
          error.unusable = data.unusable || [];
          throw error;
        }
        return data;
      });
    });
  }

  function fallbackCopy(text) {
    // navigator.clipboard exists only in secure contexts (HTTPS or localhost).
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "ref-offscreen";
    document.body.appendChild(field);
    field.select();
    var copied = document.execCommand("copy");
    document.body.removeChild(field);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function writeText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  // Some browsers (Safari) let a page write the clipboard only from the click itself, not after
  // a request: they get a clipboard item whose text arrives when the server answers.
  function copyAnswer(answer) {
    var text = answer.then(function (data) { return data.text; });
    if (window.ClipboardItem && navigator.clipboard && navigator.clipboard.write && window.isSecureContext) {
      var item = new window.ClipboardItem({
        "text/plain": text.then(function (value) {
          return new Blob([value], { type: "text/plain" });
        })
      });
      return navigator.clipboard.write([item]).catch(function () {
        // Either the server refused (text rejects with its reason) or this browser wants text.
        return text.then(writeText);
      }).then(function () { return answer; });
    }
    return text.then(writeText).then(function () { return answer; });
  }

  function markUnusable(assetId) {
    var row = rowOf(assetId);
    if (!row) {
      return;
    }
    row.classList.add("ref-unusable");
    Array.prototype.forEach.call(row.querySelectorAll("button, input, select"), function (control) {
      control.disabled = true;
    });
    row.querySelector("[data-select]").checked = false;
    selectedOrder = selectedOrder.filter(function (id) { return id !== String(assetId); });
  }

  function copy(button, payload) {
    var label = button.textContent;
    button.disabled = true;
    var answer = requestCopy(payload);
    copyAnswer(answer).then(
      function (data) {
        say(data.message, false);
        button.textContent = "Copied";
        button.classList.add("copied");
        window.setTimeout(function () {
          button.textContent = label;
          button.classList.remove("copied");
        }, 1500);
      },
      function (error) {
        say(error.message, true);
        (error.unusable || []).forEach(markUnusable);
      }
    ).then(function () {
      if (!button.closest(".ref-unusable")) {
        button.disabled = false;
      }
      updateSelection();
    });
  }

  // --- One asset: its reference or its content item ----------------------------------------

  root.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var row = button.closest("tr[data-asset-id]");
    var select = row.querySelector("[data-project]");
    if (!select.value) {
      var hasUses = Array.prototype.some.call(select.options, function (option) { return option.value; });
      say(hasUses
        ? "Choose the project you are copying for first (the list beside the buttons)."
        : "This asset's consent describes no use: it cannot be copied.", true);
      select.focus();
      return;
    }
    copy(button, { assets: [row.dataset.assetId], project: select.value, kind: button.dataset.copy });
  });

  // --- A selection: the whole content array -------------------------------------------------

  function projectsOf(row) {
    return Array.prototype.map.call(row.querySelector("[data-project]").options, function (option) {
      return option.value;
    }).filter(Boolean);
  }

  function updateSelection() {
    var selected = selectedOrder.map(rowOf).filter(Boolean);
    var counts = { image: 0, video: 0, audio: 0 };
    selected.forEach(function (row) { counts[row.dataset.kind] += 1; });
    var problems = [];

    rows().forEach(function (row) {
      var box = row.querySelector("[data-select]");
      var kind = row.dataset.kind;
      var full = counts[kind] >= max[kind];
      if (!box.checked) {
        box.disabled = full || row.classList.contains("ref-unusable");
        box.title = full ? "At most " + max[kind] + " " + WORDS[kind] + " per Seedance 2.0 request." : "";
      }
    });
    KINDS.forEach(function (kind) {
      if (counts[kind] >= max[kind]) {
        problems.push(counts[kind] + " " + WORDS[kind] + " selected: the most one Seedance 2.0 request takes, so no more can be selected.");
      }
    });
    var blocking = false;
    if (counts.audio && !counts.image && !counts.video) {
      problems.push("Audio cannot be the only reference of a Seedance 2.0 request: add an image or a video.");
      blocking = true;
    }

    // Projects every selected asset's consent covers.
    var common = null;
    selected.forEach(function (row) {
      var projects = projectsOf(row);
      common = common === null ? projects : common.filter(function (p) { return projects.indexOf(p) !== -1; });
    });
    common = common || [];
    if (selected.length && !common.length) {
      problems.push("The selected assets' consents share no project: they cannot be copied together.");
      blocking = true;
    }
    var chosen = arrayProject.value;
    while (arrayProject.options.length > 1) {
      arrayProject.remove(1);
    }
    common.forEach(function (project) {
      var option = new Option(project, project, false, project === chosen);
      arrayProject.add(option);
    });
    // The project the page is filtered by is the one stated, when every selected asset has it.
    if (!arrayProject.value && common.indexOf(root.dataset.project) !== -1) {
      arrayProject.value = root.dataset.project;
    }
    // Only one project in common: nothing to choose.
    if (!arrayProject.value && common.length === 1) {
      arrayProject.value = common[0];
    }
    arrayProject.disabled = !common.length;

    selectionCount.textContent = selected.length
      ? "Selected: " + counts.image + " of " + max.image + " images, " + counts.video + " of " +
        max.video + " videos, " + counts.audio + " of " + max.audio + " audio clips."
      : "No asset selected.";
    selectionProblem.textContent = problems.join(" ");
    arrayButton.disabled = !selected.length || blocking;
  }

  root.addEventListener("change", function (event) {
    var box = event.target.closest("[data-select]");
    if (!box) {
      return;
    }
    var assetId = box.closest("tr[data-asset-id]").dataset.assetId;
    selectedOrder = selectedOrder.filter(function (id) { return id !== assetId; });
    if (box.checked) {
      selectedOrder.push(assetId);
    }
    updateSelection();
  });

  arrayButton.addEventListener("click", function () {
    if (!arrayProject.value) {
      say("Choose the project you are copying the selection for first.", true);
      arrayProject.focus();
      return;
    }
    copy(arrayButton, { assets: selectedOrder.slice(), project: arrayProject.value, kind: "content_array" });
  });

  updateSelection();
})();
