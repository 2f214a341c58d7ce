// Copy buttons: <button class="copy-button" data-copy="asset://...">Copy</button>.
// One listener on the document serves every button, including those in inlines.
(function () {
  "use strict";

  function fallbackCopy(text) {
    // navigator.clipboard exists only in secure contexts (HTTPS or localhost).
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.style.position = "fixed";
    field.style.opacity = "0";
    document.body.appendChild(field);
    field.select();
    var copied = document.execCommand("copy");
    document.body.removeChild(field);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () {
        return fallbackCopy(text);
      });
    }
    return fallbackCopy(text);
  }

  function flash(button, label) {
    var original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = label;
    button.classList.toggle("copied", label === "Copied");
    window.setTimeout(function () {
      button.textContent = original;
      button.classList.remove("copied");
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".copy-button");
    if (!button) {
      return;
    }
    event.preventDefault();
    copy(button.dataset.copy).then(
      function () { flash(button, "Copied"); },
      function () { flash(button, "Copy failed"); }
    );
  });
})();
