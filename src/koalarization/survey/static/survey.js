// Question page: answer by click or key (R / left arrow = real, F / right arrow = fake), measure the response time
// from the moment the photo is on screen, hide the photo after the exposure time if the survey sets one.
// Without JavaScript the form still works (no response time is recorded then). The server enforces the exposure
// time too: it serves the photo only within that time, and a page reloaded after it comes without the photo.
(function () {
  "use strict";
  var form = document.getElementById("answer-form");
  var photo = document.getElementById("photo");
  if (!form) return;
  var note = document.getElementById("hidden-note");
  var exposure = parseInt(document.body.getAttribute("data-exposure-ms") || "", 10);
  var buttons = { real: document.getElementById("answer-real"), fake: document.getElementById("answer-fake") };
  var shownAt = null;
  var sent = false;

  function enable(on) { buttons.real.disabled = !on; buttons.fake.disabled = !on; }

  function shown() {
    if (shownAt !== null) return;
    shownAt = performance.now();
    enable(true);
    form.setAttribute("data-ready", "true");  // answers are timed from now on
    if (photo && exposure > 0) {
      window.setTimeout(function () { photo.classList.add("hidden-photo"); note.hidden = false; }, exposure);
    }
  }

  enable(false);
  if (!photo) shown();  // the exposure time is over: answer from memory
  else if (photo.complete && photo.naturalWidth > 0) shown();
  else {
    photo.addEventListener("load", shown);
    photo.addEventListener("error", function () {  // e.g. 410: the server says the exposure time is over
      photo.classList.add("hidden-photo"); note.hidden = false; shown();
    });
  }

  form.addEventListener("submit", function (event) {
    if (sent || shownAt === null) { event.preventDefault(); return; }
    sent = true;
    form.elements.response_ms.value = String(Math.round(performance.now() - shownAt));
    form.classList.add("sent");
  });

  document.addEventListener("keydown", function (event) {
    if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var answer = (key === "r" || key === "ArrowLeft") ? "real" : (key === "f" || key === "ArrowRight") ? "fake" : null;
    if (answer === null || sent || shownAt === null) return;
    event.preventDefault();
    form.requestSubmit(buttons[answer]);
  });
})();
