// smart-router console: the little script the pages use (they work without it).
// Selects marked data-autosubmit submit their form on change; tables without server-side
// sorting sort by a click on a header (numbers by their data-v value).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("select[data-autosubmit]")) {
    el.addEventListener("change", () => el.form.submit());
  }
  for (const table of document.querySelectorAll("table:not(.report)")) {
    const heads = table.querySelectorAll("thead th");
    heads.forEach((th, col) => {
      th.classList.add("sortable");
      th.addEventListener("click", () => {
        const body = table.tBodies[0];
        const desc = th.dataset.dir !== "desc";
        heads.forEach((h) => delete h.dataset.dir);
        th.dataset.dir = desc ? "desc" : "asc";
        const key = (row) => {
          const cell = row.cells[col];
          if (!cell) return "";
          return cell.dataset.v !== undefined ? Number(cell.dataset.v) : cell.textContent;
        };
        const rows = Array.from(body.rows).filter((r) => !r.querySelector(".empty"));
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
          return desc ? -c : c;
        });
        for (const r of rows) body.appendChild(r);
      });
    });
  }
});
