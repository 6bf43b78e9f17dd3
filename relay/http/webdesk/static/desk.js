/* Avisa desk: the maps (alerts; the publish form's place picker), the live
   mark, nothing else. No inline script anywhere (the Content-Security-Policy
   forbids it); htmx does partial updates. Streets come from the node's own
   archive or nowhere. */
(function () {
  "use strict";

  var map = null;
  var layer = null;
  var fitted = false;

  var COLORS = { confirmed: "#b4233c", unconfirmed: "#b26a00", "false": "#4a5568" };

  /* Streets under a map: the node's own PMTiles archive (data-pmtiles, read in
     ranges by the vendored reader: raster tiles, or vector tiles with
     protomaps-leaflet), or a tile URL the operator set; else none. */
  function streets(box, target) {
    var d = box.dataset;
    if (d.pmtiles && d.vector && window.protomapsL) {
      /* Vector tiles (the Protomaps basemap's layers), drawn here on canvases. */
      window.protomapsL.leafletLayer({
        url: d.pmtiles, flavor: "light", lang: document.documentElement.lang || "es",
        maxDataZoom: +d.maxzoom || 15, attribution: d.attribution || "", maxZoom: 18
      }).addTo(target);
    } else if (d.pmtiles && window.pmtiles) {
      var source = new window.pmtiles.PMTiles(d.pmtiles);
      var raster = window.pmtiles.leafletRasterLayer(source, {
        attribution: d.attribution || "", maxNativeZoom: +d.maxzoom || 14, maxZoom: 18
      });
      /* As Leaflet's own tiles are: decoration, not content, for a screen reader. */
      raster.on("tileloadstart", function (event) {
        event.tile.alt = "";
        event.tile.setAttribute("role", "presentation");
      });
      raster.addTo(target);
    } else if (d.tiles) {
      L.tileLayer(d.tiles, { attribution: d.attribution || "", maxZoom: 18 }).addTo(target);
    }
  }

  /* Leaflet's zoom buttons, titled in the page's language (the page's catalogue). */
  function zoom(box, map) {
    L.control.zoom({ zoomInTitle: box.dataset.zoomIn, zoomOutTitle: box.dataset.zoomOut }).addTo(map);
  }

  /* What draw() will cover: each alert's cell and its radius. */
  function extent(items) {
    var bounds = L.latLngBounds([]);
    items.forEach(function (item) {
      var d = item.dataset;
      bounds.extend([[+d.s, +d.w], [+d.n, +d.e]]);
      if (+d.r > 0) bounds.extend(L.latLng(+d.lat, +d.lon).toBounds(2 * +d.r));
    });
    return bounds;
  }

  function draw() {
    var box = document.getElementById("map");
    if (!box || typeof L === "undefined") return;
    if (!map) {
      map = L.map(box, { zoomControl: false, attributionControl: !!(box.dataset.tiles || box.dataset.pmtiles) });
      zoom(box, map);
      streets(box, map);
      L.control.scale({ imperial: true, metric: true }).addTo(map);
      layer = L.featureGroup().addTo(map);
      /* The first view is the alerts' own, so no tile is fetched for another. */
      var first = document.querySelectorAll("#alerts [data-geo]");
      var center = (box.dataset.center || "").split(",");
      if (first.length) map.fitBounds(extent(first), { padding: [24, 24], maxZoom: 14 });
      else if (center.length === 3) map.setView([+center[0], +center[1]], Math.max(+center[2], 8));
      else map.setView([20, 0], 2);
    }
    layer.clearLayers();
    var items = document.querySelectorAll("#alerts [data-geo]");
    items.forEach(function (item) {
      var d = item.dataset;
      var color = COLORS[d.certainty] || "#2b6cb0";
      var faded = d.state !== "active";
      var style = { color: color, weight: 2, opacity: faded ? 0.4 : 0.9, fillOpacity: faded ? 0.05 : 0.15, dashArray: faded ? "4 4" : null };
      var cell = L.rectangle([[+d.s, +d.w], [+d.n, +d.e]], style);
      var mark = L.circleMarker([+d.lat, +d.lon], { radius: 7, color: color, weight: 2, fillColor: color, fillOpacity: faded ? 0.3 : 0.9 });
      var group = [cell, mark];
      if (+d.r > 0) group.push(L.circle([+d.lat, +d.lon], { radius: +d.r, color: color, weight: 1, fillOpacity: 0.1, opacity: faded ? 0.4 : 0.9 }));
      group.forEach(function (shape) {
        // Leaflet puts a string tooltip in as HTML: give it a text node, never markup.
        shape.bindTooltip(function () {
          var text = document.createElement("span");
          text.textContent = d.title;
          return text;
        });
        shape.on("click", function () { item.scrollIntoView({ behavior: "smooth", block: "center" }); });
        layer.addLayer(shape);
      });
      item.classList.add("on-map");
    });
    if (items.length && !fitted) {
      map.fitBounds(layer.getBounds(), { padding: [24, 24], maxZoom: 14 });
      fitted = true;
    } else if (items.length) {
      map.fitBounds(layer.getBounds(), { padding: [24, 24], maxZoom: 14 });
    }
    box.dataset.drawn = String(items.length);
  }

  /* The publish form's place (tips page): a click, a drag, the arrow keys on
     the focused marker, a ZIP code or an expert's geohash move the marker;
     each move asks the node's gazetteer (the fieldset's data-place, /desk/place) and refills the
     geohash, the area codes and the place's name (the tip's own words, or
     the publisher's, stay). */
  var STEP_PX = 24;  /* one arrow key press moves the marker this far */

  function text(box, cls) { return box.querySelector("." + cls); }

  function setup(box) {
    var el = text(box, "pick-map");
    if (!el || el.dataset.ready || typeof L === "undefined") return;
    el.dataset.ready = "yes";
    var d = el.dataset;
    var map = L.map(el, { zoomControl: false, attributionControl: !!(d.tiles || d.pmtiles) });
    zoom(el, map);
    streets(el, map);
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
      fetch(box.dataset.place + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
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
    /* The keyboard on the map itself (arrows pan, +/- zoom): Enter puts the marker
       at the centre, for a tip with no place to start from. */
    el.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || event.target !== el) return;
      event.preventDefault();
      put(map.getCenter());
      at(map.getCenter());
    });

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

  function pickers() { document.querySelectorAll("fieldset.pick").forEach(setup); }

  /* The live feed: /desk/stream says which part changed ("alerts", "tips");
     parts listening with hx-trigger="desk:alerts from:body" fetch themselves
     again. Closed when the page is hidden: a page kept in the back/forward
     cache must not hold one of the browser's six connections to the node. */
  var source = null;

  function live(on) {
    var mark = document.getElementById("live");
    if (mark) mark.classList.toggle("on", on);
  }

  function connect() {
    if (source || !document.body.dataset.stream || typeof EventSource === "undefined") return;
    source = new EventSource(document.body.dataset.stream);
    source.onopen = function () { live(true); };
    source.onerror = function () { live(source && source.readyState === EventSource.OPEN); };
    ["alerts", "tips"].forEach(function (part) {
      source.addEventListener(part, function () {
        if (window.htmx) window.htmx.trigger(document.body, "desk:" + part);
      });
    });
  }

  function disconnect() {
    if (source) source.close();
    source = null;
    live(false);
  }

  document.addEventListener("DOMContentLoaded", function () { draw(); pickers(); connect(); });
  document.addEventListener("htmx:afterSettle", function () { draw(); pickers(); });
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (event) { if (event.persisted) connect(); });
})();
