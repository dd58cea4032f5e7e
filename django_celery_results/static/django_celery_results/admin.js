// django-celery-results admin: the copy buttons beside compact task ids.
"use strict";

function dcrCopy(text) {
  // The clipboard API exists on HTTPS and localhost only; elsewhere, copy a selection.
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  var area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  var copied = document.execCommand("copy");
  document.body.removeChild(area);
  return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("button.dcr-copy") : null;
  if (!button) {
    return;
  }
  event.preventDefault();
  dcrCopy(button.getAttribute("data-copy")).then(function () {
    button.classList.add("dcr-copied");
  }, function () {});
});
