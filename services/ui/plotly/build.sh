#!/usr/bin/env bash
# Rebuild ../pairstream_ui/assets/vendor/plotly.min.js (committed, so no setup needs npm):
# a plotly.js custom bundle of the traces the dashboard draws, 1.2 MB instead of the full
# 4.8 MB the plotly wheel serves, so a cold browser draws the first chart sooner. Keep
# plotly.js at the version the plotly wheel bundles (a test checks it): after upgrading
# plotly, set it in package.json and run this.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --ignore-scripts
version=$(node -p 'require("plotly.js/package.json").version')
npx esbuild entry.js --bundle --minify --format=iife --global-name=Plotly --define:global=window \
  --legal-comments=eof --outfile=build/plotly.min.js \
  --banner:js="/*! plotly.js v$version custom bundle (scatter, bar, candlestick, heatmap) | MIT License, Copyright (c) Plotly, Inc. | built by services/ui/plotly/build.sh */"
mkdir -p ../pairstream_ui/assets/vendor
cp build/plotly.min.js ../pairstream_ui/assets/vendor/plotly.min.js
ls -l ../pairstream_ui/assets/vendor/plotly.min.js
