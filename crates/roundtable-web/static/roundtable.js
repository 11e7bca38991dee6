// Roundtable's page script. It only adds things: every page and form works without it.
// - A "Read aloud" button after each [data-read] element (the browser's own speech).
// - Live writing advice under each textarea[data-advice]: the same checks the server makes on the
//   "Check before you share" page (hard words from the members' list, sentences over 15 words).
// - On the new-thread form, choosing a sealed thread opens the questions about readers and reason.
(function () {
  "use strict";

  var MAX_WORDS = 15;

  function readAloud() {
    var synth = window.speechSynthesis;
    if (!synth || !window.SpeechSynthesisUtterance) {
      return;
    }
    var buttons = [];
    function reset() {
      buttons.forEach(function (b) {
        b.setAttribute("aria-pressed", "false");
        b.lastChild.textContent = " Read aloud";
      });
    }
    document.querySelectorAll("[data-read]").forEach(function (el) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "secondary read-aloud";
      b.setAttribute("aria-pressed", "false");
      var img = document.createElement("img");
      img.src = "/static/pictures/read-aloud.svg";
      img.alt = "";
      img.width = 32;
      img.height = 32;
      b.appendChild(img);
      b.appendChild(document.createTextNode(" Read aloud"));
      b.addEventListener("click", function () {
        var wasOn = b.getAttribute("aria-pressed") === "true";
        synth.cancel();
        reset();
        if (wasOn) {
          return;
        }
        var u = new window.SpeechSynthesisUtterance(el.innerText);
        u.lang = document.documentElement.lang || "en";
        u.onend = reset;
        b.setAttribute("aria-pressed", "true");
        b.lastChild.textContent = " Stop reading";
        synth.speak(u);
      });
      buttons.push(b);
      el.insertAdjacentElement("afterend", b);
    });
  }

  function words(text) {
    return text
      .split(/\s+/)
      .map(function (w) {
        return w.replace(/^[^\p{L}\p{N}'-]+|[^\p{L}\p{N}'-]+$/gu, "").toLowerCase();
      })
      .filter(function (w) {
        return w.length > 0;
      });
  }

  function containsPhrase(ws, phrase) {
    if (phrase.length === 0) {
      return false;
    }
    for (var i = 0; i + phrase.length <= ws.length; i++) {
      var all = true;
      for (var j = 0; j < phrase.length; j++) {
        if (ws[i + j] !== phrase[j]) {
          all = false;
          break;
        }
      }
      if (all) {
        return true;
      }
    }
    return false;
  }

  function advise(text, terms) {
    var ws = words(text);
    var out = [];
    terms.forEach(function (t) {
      if (containsPhrase(ws, words(t.word))) {
        out.push("“" + t.word + "” can be hard to understand. You could say: “" + t.plain + "”.");
      }
    });
    text.split(/[.!?\n]/).forEach(function (s) {
      var n = s.trim().split(/\s+/).filter(Boolean).length;
      if (n > MAX_WORDS) {
        out.push("A sentence has " + n + " words. Sentences of 15 words or fewer are easier to read.");
      }
    });
    return out;
  }

  function liveAdvice() {
    var areas = document.querySelectorAll("textarea[data-advice]");
    if (areas.length === 0 || !window.fetch) {
      return;
    }
    fetch("/glossary.json", { credentials: "same-origin" })
      .then(function (r) {
        return r.ok ? r.json() : [];
      })
      .then(function (terms) {
        areas.forEach(function (area) {
          var box = document.getElementById(area.getAttribute("data-advice"));
          if (!box) {
            return;
          }
          var timer = null;
          function show() {
            var items = advise(area.value, terms);
            box.textContent = "";
            if (items.length === 0) {
              return;
            }
            var p = document.createElement("p");
            p.textContent = "Advice (you can still share it as it is):";
            var ul = document.createElement("ul");
            items.forEach(function (t) {
              var li = document.createElement("li");
              li.textContent = t;
              ul.appendChild(li);
            });
            box.appendChild(p);
            box.appendChild(ul);
          }
          area.addEventListener("input", function () {
            window.clearTimeout(timer);
            timer = window.setTimeout(show, 700);
          });
          show();
        });
      })
      .catch(function () {
        // No advice is only less help: the check page still gives it.
      });
  }

  // Choosing "only the members I choose" opens the part of the form that asks who and why.
  function sealedOptions() {
    var more = document.querySelector("details.sealed-options");
    if (!more) {
      return;
    }
    document.querySelectorAll('input[name="who"]').forEach(function (r) {
      r.addEventListener("change", function () {
        more.open = r.checked && r.value === "sealed";
      });
    });
  }

  readAloud();
  liveAdvice();
  sealedOptions();
})();
