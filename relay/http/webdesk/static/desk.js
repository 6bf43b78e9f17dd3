/* Avisa desk: the map, the live mark, nothing else. No inline script anywhere
   (the Content-Security-Policy forbids it); htmx does partial updates. */
(function () {
  "use strict";

  var map = null;
  var layer = null;
  var fitted = false;

  var COLORS = { confirmed: "#b4233c", unconfirmed: "#b26a00", "false": "#4a5568" };

  /* Streets under a map: the node's own PMTiles archive (data-pmtiles, read in
     ranges by the vendored reader), or a tile URL the operator set; else none. */
  function streets(box, target) {
    var d = box.dataset;
    if (d.pmtiles && window.pmtiles) {
      var source = new window.pmtiles.PMTiles(d.pmtiles);
      var layer = window.pmtiles.leafletRasterLayer(source, {
        attribution: d.attribution || "", maxNativeZoom: +d.maxzoom || 14, maxZoom: 18
      });
      /* As Leaflet's own tiles are: decoration, not content, for a screen reader. */
      layer.on("tileloadstart", function (event) {
        event.tile.alt = "";
        event.tile.setAttribute("role", "presentation");
      });
      layer.addTo(target);
    } else if (d.tiles) {
      L.tileLayer(d.tiles, { attribution: d.attribution || "", maxZoom: 18 }).addTo(target);
    }
  }

  window.avisaStreets = streets;  /* for pick.js, the publish form's map */

  function draw() {
    var box = document.getElementById("map");
    if (!box || typeof L === "undefined") return;
    if (!map) {
      map = L.map(box, { zoomControl: true, attributionControl: !!(box.dataset.tiles || box.dataset.pmtiles) });
      streets(box, map);
      L.control.scale({ imperial: true, metric: true }).addTo(map);
      layer = L.featureGroup().addTo(map);
      var center = (box.dataset.center || "").split(",");
      if (center.length === 3) map.setView([+center[0], +center[1]], Math.max(+center[2], 8));
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

  document.addEventListener("DOMContentLoaded", function () { draw(); connect(); });
  document.addEventListener("htmx:afterSettle", draw);
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (event) { if (event.persisted) connect(); });
})();
