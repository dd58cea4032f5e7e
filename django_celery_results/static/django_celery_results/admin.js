// django-celery-results admin: the copy buttons beside compact task ids.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest("button.dcr-copy") : null;
  if (!button || !navigator.clipboard) {
    return;
  }
  event.preventDefault();
  navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
    button.classList.add("dcr-copied");
  });
});
