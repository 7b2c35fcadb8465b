// Draws each panel's chart from the data the server rendered into it (data-chart), on first
// load and after every htmx swap. No other client-side state: the server is the truth.
(function () {
  "use strict";
  function draw(el) {
    if (el.dataset.drawn || !window.LightweightCharts) return;
    el.dataset.drawn = "1";
    var data = JSON.parse(el.dataset.chart);
    var LC = window.LightweightCharts;
    var chart = LC.createChart(el, {
      autoSize: true,
      layout: { background: { color: "#171a21" }, textColor: "#e6e8eb", attributionLogo: true },
      grid: { vertLines: { color: "#2a2f3a" }, horzLines: { color: "#2a2f3a" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    var series = chart.addSeries(LC.LineSeries, { color: "#8ab4f8", lineWidth: 2 });
    series.setData(data.points);
    LC.createSeriesMarkers(series, data.markers);
    chart.timeScale().fitContent();
  }
  function drawAll(root) {
    (root || document).querySelectorAll(".chart[data-chart]").forEach(draw);
  }
  // A panel polling itself must not replace a control the person is using (the feed's filter).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var panel = event.detail.elt;
    var active = document.activeElement;
    var config = event.detail.requestConfig;
    if (config && !config.triggeringEvent &&
        active && active !== document.body && panel.contains(active) && active.tagName === "SELECT") {
      event.preventDefault();
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
    if (window.htmx) window.htmx.onLoad(drawAll);
  });
})();
