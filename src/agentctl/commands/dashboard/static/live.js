// agentctl dashboard: a run page's new journal events, appended as they come (SSE).
// Text only (textContent): an event's fields are never parsed as HTML.
"use strict";
(function () {
  const table = document.getElementById("events");
  if (!table || ["succeeded", "failed", "canceled"].includes(table.dataset.status)) {
    return;
  }
  const body = table.tBodies[0];
  const source = new EventSource(
    "/runs/" + encodeURIComponent(table.dataset.run) + "/events?after=" + table.dataset.after
  );
  function cell(row, text, cls) {
    const td = row.insertCell();
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }
  source.addEventListener("journal", function (message) {
    const event = JSON.parse(message.data);
    if (body.querySelector('tr[data-seq="' + event.seq + '"]')) return;
    const row = body.insertRow();
    row.className = "event new " + String(event.type).replace(/\./g, "-");
    row.dataset.seq = event.seq;
    cell(row, String(event.seq), "num");
    cell(row, event.ts);
    cell(row, event.type, "type");
    const fields = cell(row, "", "fields");
    for (const [key, value] of Object.entries(event.fields)) {
      if (value === null) continue;
      const span = document.createElement("span");
      span.className = "field";
      const name = document.createElement("b");
      name.textContent = key;
      span.appendChild(name);
      span.appendChild(
        document.createTextNode("=" + (typeof value === "string" ? value : JSON.stringify(value)) + " ")
      );
      fields.appendChild(span);
    }
    if (event.type === "status" && event.fields.to) {
      document.getElementById("status").textContent = event.fields.to;
    }
  });
  source.addEventListener("end", function (message) {
    document.getElementById("status").textContent = JSON.parse(message.data);
    source.close();
  });
})();
