// Sorting and filtering for every table of class "sortable"; no library, no network.
(function () {
  "use strict";
  function key(cell) {
    var sort = cell.getAttribute("data-sort");
    if (sort !== null) { return sort === "" ? NaN : parseFloat(sort); }
    return cell.textContent.trim().toLowerCase();
  }
  function compare(a, b, descending) {
    var numeric = typeof a === "number" || typeof b === "number";
    if (numeric) {
      var an = typeof a === "number" ? a : NaN, bn = typeof b === "number" ? b : NaN;
      if (isNaN(an) && isNaN(bn)) { return 0; }
      if (isNaN(an)) { return 1; }   // missing values last, either direction
      if (isNaN(bn)) { return -1; }
      return descending ? bn - an : an - bn;
    }
    var order = a < b ? -1 : a > b ? 1 : 0;
    return descending ? -order : order;
  }
  function sortBy(table, header) {
    var index = Array.prototype.indexOf.call(header.parentNode.children, header);
    var descending = header.getAttribute("aria-sort") === "ascending";
    table.querySelectorAll("th").forEach(function (th) { th.setAttribute("aria-sort", "none"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) { return compare(key(r.cells[index]), key(s.cells[index]), descending); });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(table, th); } });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = input.parentNode.querySelector("table");
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
      });
    });
  });
})();
