/* Avisa desk: pick an alert's place on a map in the publish form (tips page).
   A click, a drag, the arrow keys on the focused marker, a ZIP code or an
   expert's geohash move the marker; each move asks the node's gazetteer
   (/desk/place) and refills the geohash, the area codes and, unless the
   publisher edited it, the place's name. Streets come from the node
   (desk.js: avisaStreets). No inline script; nothing from another host. */
(function () {
  "use strict";

  var STEP_PX = 24;  /* one arrow key press moves the marker this far */

  function text(box, cls) { return box.querySelector("." + cls); }

  function setup(box) {
    var el = text(box, "pick-map");
    if (!el || el.dataset.ready || typeof L === "undefined") return;
    el.dataset.ready = "yes";
    var d = el.dataset;
    var map = L.map(el, { zoomControl: true, attributionControl: !!(d.tiles || d.pmtiles) });
    if (window.avisaStreets) window.avisaStreets(el, map);
    map.setView([+d.lat, +d.lon], +d.zoom);
    var marker = null;
    var status = text(box, "pick-status");
    var label = text(box, "pick-label");
    var asked = 0;


    function say(kind, words) {
      status.textContent = words;
      status.className = "pick-status " + kind;
    }

    function place(found) {
      text(box, "pick-geohash").value = found.geohash;
      text(box, "pick-codes-value").value = found.codes.join(" ");
      text(box, "pick-codes-text").textContent = found.codes.join(" ");
      var zip = found.codes.filter(function (c) { return c.indexOf("zip:") === 0; })[0];
      if (zip) {
        text(box, "pick-zip").value = zip.slice(4);
        text(box, "pick-zip-shown").value = zip.slice(4);
      }
      /* The tip's own words for the place, or the publisher's, stay; a name the
         gazetteer gave is replaced by the next one. */
      if (found.label && (!label.value.trim() || label.value === label.dataset.auto)) {
        label.value = found.label;
        label.dataset.auto = found.label;
      }
      say("good", status.dataset.placed + " " + (found.label || found.geohash) + " · " + found.codes.join(" "));
      box.dataset.placed = found.geohash;
    }

    function ask(query, then) {
      var mine = ++asked;
      say("", status.dataset.looking);
      fetch("/desk/place?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          return r.json().then(function (body) { return { ok: r.ok, body: body }; });
        })
        .then(function (answer) {
          if (mine !== asked) return;  /* a later move wins */
          if (!answer.ok) { say("bad", status.dataset.bad + " " + (answer.body.error || "")); return; }
          place(answer.body);
          if (then) then(answer.body);
        })
        .catch(function () { if (mine === asked) say("bad", status.dataset.bad); });
    }

    function at(latlng) {
      var p = latlng.wrap();
      ask("lat=" + p.lat.toFixed(6) + "&lon=" + p.lng.toFixed(6));
    }

    function put(latlng) {
      if (marker) { marker.setLatLng(latlng); return; }
      /* A pin drawn by desk.css: Leaflet's default icon is an image the node does not ship. */
      var pin = L.divIcon({ className: "pick-pin", iconSize: [28, 28], iconAnchor: [14, 28] });
      marker = L.marker(latlng, { icon: pin, draggable: true, keyboard: true, autoPan: true, title: d.markerLabel });
      marker.addTo(map);
      marker.on("dragend", function () { at(marker.getLatLng()); });
      var icon = marker.getElement();
      icon.setAttribute("role", "button");
      icon.setAttribute("aria-label", d.markerLabel);
      icon.addEventListener("keydown", function (event) {
        var move = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] }[event.key];
        if (!move) return;
        event.preventDefault();
        event.stopPropagation();
        var point = map.latLngToContainerPoint(marker.getLatLng()).add(L.point(move[0] * STEP_PX, move[1] * STEP_PX));
        var moved = map.containerPointToLatLng(point);
        marker.setLatLng(moved);
        map.panInside(moved, { padding: [STEP_PX, STEP_PX] });
        clearTimeout(box.pickTimer);
        box.pickTimer = setTimeout(function () { at(marker.getLatLng()); }, 300);
      });
    }

    if (d.marker) put([+d.lat, +d.lon]);
    map.on("click", function (event) { put(event.latlng); at(event.latlng); });

    function byZip() {
      var zip = text(box, "pick-zip").value.trim();
      if (!/^[0-9]{5}$/.test(zip)) { say("bad", status.dataset.bad + " " + zip); return; }
      ask("zip=" + zip, function (found) { put([found.lat, found.lon]); map.setView([found.lat, found.lon], 14); });
    }
    text(box, "pick-find").addEventListener("click", byZip);
    text(box, "pick-zip").addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); byZip(); }  /* not the form's submit */
    });
    text(box, "pick-geohash").addEventListener("change", function () {
      var cell = this.value.trim().toLowerCase();
      if (!cell) return;
      ask("geohash=" + encodeURIComponent(cell), function (found) { put([found.lat, found.lon]); map.setView([found.lat, found.lon], Math.max(map.getZoom(), 13)); });
    });
    /* The marker's place shows once the details around it are open. */
    var details = box.closest("details");
    if (details) details.addEventListener("toggle", function () { map.invalidateSize(); });
  }

  function all() { document.querySelectorAll("fieldset.pick").forEach(setup); }

  document.addEventListener("DOMContentLoaded", all);
  document.addEventListener("htmx:afterSettle", all);
})();
