// pcprof HTML report: table sorting, name filter, and a self-test that runs
// only when the page is opened with `#selftest` (used by pcprof's browser
// test). No data lives in this script: rows carry their sort keys in
// data-* attributes, so nothing from the profile is ever evaluated as code.
(function () {
  'use strict';

  function rowsOf(table) {
    return Array.prototype.slice.call(table.tBodies[0].rows);
  }

  function keyOf(row, key, type) {
    var v = row.getAttribute('data-' + key);
    if (type === 'num') {
      var n = parseFloat(v);
      return isNaN(n) ? 0 : n;
    }
    return v === null ? '' : v;
  }

  // Sorts `table` by column `key`; `dir` is 'ascending' or 'descending'.
  // Ties keep the report's original order (hottest first), so sorting is
  // stable and deterministic.
  function sortTable(table, key, type, dir) {
    var sign = dir === 'ascending' ? 1 : -1;
    var rows = rowsOf(table);
    rows.sort(function (a, b) {
      var x = keyOf(a, key, type);
      var y = keyOf(b, key, type);
      var c;
      if (type === 'num') {
        c = x - y;
      } else {
        c = x < y ? -1 : x > y ? 1 : 0;
      }
      if (c !== 0) {
        return sign * c;
      }
      return keyOf(a, 'order', 'num') - keyOf(b, 'order', 'num');
    });
    var body = table.tBodies[0];
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.querySelectorAll('th[data-key]'), function (th) {
      if (th.getAttribute('data-key') === key) {
        th.setAttribute('aria-sort', dir);
      } else {
        th.removeAttribute('aria-sort');
      }
    });
  }

  function onHeader(table, th) {
    var key = th.getAttribute('data-key');
    var type = th.getAttribute('data-type') || 'str';
    var current = th.getAttribute('aria-sort');
    var dir;
    if (current === 'ascending') {
      dir = 'descending';
    } else if (current === 'descending') {
      dir = 'ascending';
    } else {
      // First click: biggest numbers first, names from A.
      dir = type === 'num' ? 'descending' : 'ascending';
    }
    sortTable(table, key, type, dir);
  }

  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.querySelectorAll('th[data-key]'), function (th) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { onHeader(table, th); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          onHeader(table, th);
        }
      });
    });
  });

  var filter = document.getElementById('function-filter');
  var functions = document.getElementById('functions');
  if (filter && functions) {
    filter.addEventListener('input', function () {
      var q = filter.value.toLowerCase();
      rowsOf(functions).forEach(function (r) {
        var name = (r.getAttribute('data-name') || '').toLowerCase();
        r.hidden = q !== '' && name.indexOf(q) < 0;
      });
    });
  }

  // Opening a function from the table also unfolds its disassembly.
  window.addEventListener('hashchange', function () {
    var id = decodeURIComponent(location.hash.slice(1));
    var el = id ? document.getElementById(id) : null;
    if (el && el.tagName === 'DETAILS') {
      el.open = true;
    }
  });

  function selfTest() {
    var out = { ok: false, steps: [] };
    try {
      var table = document.getElementById('functions');
      var names = function () {
        return rowsOf(table).map(function (r) { return r.getAttribute('data-name'); });
      };
      var samples = function () {
        return rowsOf(table).map(function (r) { return Number(r.getAttribute('data-samples')); });
      };
      var click = function (key) {
        var th = table.querySelector('th[data-key="' + key + '"]');
        th.click();
        out.steps.push({
          clicked: key,
          sort: th.getAttribute('aria-sort'),
          names: names(),
          samples: samples()
        });
      };
      out.initial = { names: names(), samples: samples() };
      click('name');
      click('name');
      click('samples');
      click('samples');
      out.disassembled = Array.prototype.map.call(
        document.querySelectorAll('details.fn'),
        function (d) { return d.getAttribute('data-name'); });
      out.timelineLanes = document.querySelectorAll('svg.timeline .lane').length;
      out.sequences = document.querySelectorAll('#sequences tbody tr').length;
      out.external = Array.prototype.filter.call(
        document.querySelectorAll('[src],[href]'),
        function (e) {
          var u = e.getAttribute('src') || e.getAttribute('href') || '';
          return u.charAt(0) !== '#';
        }).length;
      // Elements a name from the file could inject if it were not escaped.
      out.scripts = document.scripts.length;
      out.images = document.images.length;
      out.ok = true;
    } catch (e) {
      out.error = String(e);
    }
    var pre = document.createElement('pre');
    pre.id = 'selftest-result';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }

  if (location.hash === '#selftest') {
    selfTest();
  }
})();
