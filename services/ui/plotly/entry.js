// The traces the dashboard draws (pairstream_ui/figures.py); core registers scatter.
var Plotly = require('plotly.js/lib/core');
Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/candlestick'),
    require('plotly.js/lib/heatmap'),
]);
module.exports = Plotly;
