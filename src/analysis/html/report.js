// pcprof HTML report: table sorting, name filter, the flame graph's zoom,
// search and hover, and a self-test that runs
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


  // The flame graph (profiles with call stacks): every frame carries its
  // depth, left edge and total in samples (data-d, data-x, data-t), so a
  // zoom is a new layout of those numbers.
  var flame = document.getElementById('flame');
  var flameApi = null;
  if (flame) {
    var frames = Array.prototype.slice.call(flame.querySelectorAll('.fl'));
    var num = function (el, k) { return Number(el.getAttribute('data-' + k)); };
    var all = Number(flame.getAttribute('data-total')) || 1;
    var info = document.getElementById('flame-info');
    var search = document.getElementById('flame-search');
    var matched = document.getElementById('flame-matched');
    var pct = function (n) { return (100 * n / all).toFixed(2) + '%'; };
    // Zooms on `z`: its subtree spans the width, its callers stay above
    // at full width, every other frame is hidden.
    var zoom = function (z) {
      var zd = num(z, 'd'), zx = num(z, 'x'), zt = num(z, 't') || 1;
      frames.forEach(function (f) {
        var d = num(f, 'd'), x = num(f, 'x'), t = num(f, 't');
        if (d >= zd && x >= zx && x < zx + zt) {
          f.hidden = false;
          f.style.left = (100 * (x - zx) / zt) + '%';
          f.style.width = (100 * t / zt) + '%';
        } else if (d < zd && x <= zx && zx < x + t) {
          f.hidden = false;
          f.style.left = '0%';
          f.style.width = '100%';
        } else {
          f.hidden = true;
        }
      });
    };
    // Marks the frames whose name contains `q` (case-insensitive); the
    // share counts a frame under a marked frame once (depth-first order:
    // a caller comes before its callees).
    var find = function (q) {
      q = q.toLowerCase();
      var sum = 0, count = 0, last = null;
      frames.forEach(function (f) {
        var hit = q !== '' && (f.getAttribute('data-name') || '').toLowerCase().indexOf(q) >= 0;
        f.classList.toggle('match', hit);
        if (!hit) {
          return;
        }
        count += 1;
        var d = num(f, 'd'), x = num(f, 'x');
        var inside = last && d > last.d && x >= last.x && x < last.x + last.t;
        if (!inside) {
          last = { d: d, x: x, t: num(f, 't') };
          sum += last.t;
        }
      });
      matched.textContent = q === '' ? '' :
        count + ' frames matched: ' + pct(sum) + ' of all samples';
    };
    var show = function (f) {
      info.textContent = f.getAttribute('data-name') + ': total ' + num(f, 't') +
        ' samples (' + pct(num(f, 't')) + '), self ' + num(f, 's') +
        ' (' + pct(num(f, 's')) + ')';
    };
    flame.addEventListener('click', function (e) {
      var f = e.target.closest('.fl');
      if (f) {
        zoom(f);
      }
    });
    flame.addEventListener('mouseover', function (e) {
      var f = e.target.closest('.fl');
      if (f) {
        show(f);
      }
    });
    document.getElementById('flame-reset').addEventListener('click', function () {
      zoom(frames[0]);
    });
    search.addEventListener('input', function () { find(search.value); });
    flameApi = {
      frames: frames,
      visible: function () {
        return frames.filter(function (f) { return !f.hidden; }).map(function (f) {
          return [f.getAttribute('data-name'), num(f, 'd'),
            Math.round(parseFloat(f.style.left) * 100) / 100,
            Math.round(parseFloat(f.style.width) * 100) / 100];
        });
      }
    };
  }

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
      if (flameApi) {
        // Zoom on the first frame two levels down, hover it, search a
        // name, then reset the zoom: each step as the page shows it.
        var fl = { initial: flameApi.visible() };
        var deep = flameApi.frames.filter(function (f) {
          return f.getAttribute('data-d') === '2';
        })[0];
        if (deep) {
          deep.dispatchEvent(new MouseEvent('click', { bubbles: true }));
          fl.zoomed = flameApi.visible();
          deep.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
          fl.info = document.getElementById('flame-info').textContent;
          var box = document.getElementById('flame-search');
          // The last frame's name: in a recursion, frames under a
          // marked frame are marked but counted once.
          box.value = flameApi.frames[flameApi.frames.length - 1].getAttribute('data-name');
          box.dispatchEvent(new Event('input'));
          fl.matched = document.getElementById('flame-matched').textContent;
          fl.marked = flameApi.frames.filter(function (f) {
            return f.classList.contains('match');
          }).length;
        }
        document.getElementById('flame-reset').click();
        fl.reset = flameApi.visible();
        out.flame = fl;
      }
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
