/* wattlm optimize report: draw the Pareto plot, make tables sortable. No network, no deps
   beyond the plotly.js bundle embedded in the same page. */
(function () {
  "use strict";

  function drawPlot() {
    var el = document.getElementById("pareto-plot");
    var src = document.getElementById("pareto-data");
    if (!el || !src || typeof Plotly === "undefined") return;
    var fig = JSON.parse(src.textContent);
    Plotly.newPlot(el, fig.data, fig.layout, fig.config);
  }

  function sortKey(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (numeric) return raw === null || raw === "" ? null : parseFloat(raw);
    return (raw === null ? cell.textContent : raw).trim().toLowerCase();
  }

  function sortBy(table, index, numeric, th) {
    var body = table.tBodies[0];
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[index], numeric);
      var y = sortKey(b.cells[index], numeric);
      if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1; /* blanks last */
      return x < y ? -dir : x > y ? dir : 0;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  function makeSortable() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      var heads = table.tHead.rows[0].cells;
      Array.prototype.forEach.call(heads, function (th, index) {
        var button = th.querySelector("button");
        if (!button) return;
        var numeric = th.getAttribute("data-type") === "num";
        button.addEventListener("click", function () { sortBy(table, index, numeric, th); });
      });
    });
  }

  makeSortable();
  drawPlot();
})();
