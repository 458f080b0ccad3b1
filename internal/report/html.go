package report

import (
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/archfit/archfit/internal/audit"
	"github.com/archfit/archfit/internal/finding"
)

// HTMLSection is an extra block of the audit page (the rollout plan).
type HTMLSection struct {
	Title string
	Intro string
	Items []HTMLItem
}

// HTMLItem is a titled paragraph with optional code.
type HTMLItem struct {
	Title string
	Text  string
	Code  string
}

var htmlPage = template.Must(template.New("audit").Funcs(template.FuncMap{
	"pct":  func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"join": strings.Join,
	"class": func(c audit.Cell) string {
		return string(c.Verdict) + map[bool]string{true: "", false: " off"}[c.Admitted]
	},
	"sym":     cellSymbol,
	"add":     func(a, b int) int { return a + b },
	"allowed": allowedText,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>archfit audit</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.runs{background:#b7e4c7}td.fails{background:#f4a6a6;font-weight:bold}td.unknown{background:#ffe08a}
td.off{opacity:.45}td.runs.caveat{background:#d8f3dc}
.kpi{display:inline-block;margin-right:2em;font-size:1.3em}.kpi b{font-size:1.6em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto}.waived{color:#777}
.incomplete{background:#ffe08a;border:1px solid #c9a400;padding:.2em 1em;margin:1em 0}
.legend span{display:inline-block;padding:2px 8px;margin-right:6px}
</style></head><body>
<h1>archfit audit</h1>
{{with .I}}<div class="incomplete"><p><b>Incomplete: {{.Headline}}</b>; nothing below is checked against them: the workloads that need them are unknown, neither ready nor blocked.</p>
<ul>{{range .ByReason}}<li><b>{{.Reason}}{{if .Layout}} in the OCI layout{{end}}</b> ({{len .Images}}): {{range $i, $r := .Images}}{{if $i}}, {{end}}<code>{{$r}}</code>{{end}}<br>what to do: {{.Advice}}</li>{{end}}</ul></div>{{end}}
<div class="kpi">arm64-ready workloads <b>{{pct .R.Readiness.WorkloadShare}}</b> ({{.R.Readiness.ReadyWorkloads}}/{{.R.Readiness.Workloads}})</div>
<div class="kpi">arm64-ready replicas <b>{{pct .R.Readiness.ReplicaShare}}</b> ({{.R.Readiness.ReadyReplicas}}/{{.R.Readiness.Replicas}})</div>
<div class="kpi">blocked <b>{{.R.Readiness.BlockedWorkloads}}</b>, conflicting <b>{{.R.Readiness.ConflictWorkloads}}</b>, unknown <b>{{.R.Readiness.UnknownWorkloads}}</b></div>
<h2>Node pools</h2>
<ul>{{range .R.Pools}}<li>{{.ID}} — {{if .Assumed}}assumed{{else}}{{.Nodes}} node(s){{end}}{{range .Taints}}, taint <code>{{.Key}}={{.Value}}:{{.Effect}}</code>{{end}}</li>{{end}}</ul>
<h2>Blockers</h2>
{{if .R.Blockers}}<table><tr><th>#</th><th>image</th><th>runs on</th><th>as</th><th>workloads</th><th>replicas</th><th>fix</th></tr>
{{range $i, $b := .R.Blockers}}<tr><td>{{add $i 1}}</td><td><code>{{$b.Image}}</code></td><td>{{join $b.Architectures ", "}}</td><td>{{join $b.Roles ", "}}</td><td>{{$b.Workloads}}</td><td>{{$b.Replicas}}</td><td>{{if $b.Build}}{{with index $b.Build.Recipes 0}}<details><summary>{{.Title}}</summary><pre>{{.Text}}</pre></details>{{end}}{{range $b.Build.Dockerfiles}}<details class="dockerfile"><summary>Dockerfile <code>{{.File}}</code>: {{len .Findings}} finding(s)</summary><p>{{.Summary}}</p>{{range .Findings}}<p><code>{{.Position}}</code> {{.Severity}} <code>{{.Code}}</code> <code>{{join .Evidence " "}}</code><br>{{.Message}}</p>{{if .Fix}}<pre>{{.Fix}}</pre>{{end}}{{end}}</details>{{end}}{{end}}</td></tr>
{{end}}</table>{{else if .R.Readiness.UnknownWorkloads}}<p>No image that archfit could read blocks arm64; {{.R.Readiness.UnknownWorkloads}} workload(s) are unknown: their images could not be read.</p>{{else}}<p>No image blocks arm64.</p>{{end}}
<h2>Coverage matrix</h2>
<p class="legend"><span style="background:#b7e4c7">runs</span><span style="background:#f4a6a6">fails</span><span style="background:#ffe08a">unknown</span><span style="opacity:.45;background:#eee">pods cannot be scheduled there</span></p>
<table><tr><th>workload</th><th>container</th><th>role</th><th>image</th>{{range .R.Pools}}<th>{{.ID}}</th>{{end}}<th>allowed</th></tr>
{{range $w := .R.Workloads}}{{range $i, $c := $w.Containers}}<tr>{{if eq $i 0}}<td rowspan="{{len $w.Containers}}">{{$w.Ref}}</td>{{end}}<td>{{$c.Name}}</td><td>{{$c.Role}}</td><td><code>{{$c.Image}}</code>{{with $c.Base}}<br><small>base {{.Name}}</small>{{end}}</td>{{range $c.Cells}}<td class="{{class .}}" title="{{.How}}">{{sym .}}</td>{{end}}{{if eq $i 0}}<td rowspan="{{len $w.Containers}}">{{allowed $w}}</td>{{end}}</tr>
{{end}}{{end}}</table>
<h2>Findings</h2>
{{if .F}}<table><tr><th>severity</th><th>code</th><th>workload</th><th>container</th><th>message</th></tr>
{{range .F}}<tr{{if .Waived}} class="waived"{{end}}><td>{{.Severity}}</td><td><code>{{.Code}}</code></td><td>{{with .Workload}}{{.}}{{end}}</td><td>{{.Container}}</td><td>{{.Message}}{{range .Evidence}}<br><small>{{.}}</small>{{end}}{{if .Waived}}<br><b>waived:</b> {{.Waived}}{{end}}</td></tr>
{{end}}</table>{{else}}<p>No findings.</p>{{end}}
{{range .S}}<h2>{{.Title}}</h2>{{if .Intro}}<p>{{.Intro}}</p>{{end}}{{range .Items}}<h3>{{.Title}}</h3>{{if .Text}}<p>{{.Text}}</p>{{end}}{{if .Code}}<pre>{{.Code}}</pre>{{end}}{{end}}{{end}}
</body></html>
`))

// HTML writes the audit r as one self-contained page (no external
// resources): the readiness, blockers, the coverage matrix as a coloured
// grid, findings and the extra sections (the rollout plan).
//
// inc (nil when every image was read) heads the page.
func HTML(w io.Writer, r *audit.Result, fs []finding.Finding, sections []HTMLSection, inc *Incomplete) error {
	return htmlPage.Execute(w, struct {
		R *audit.Result
		F []finding.Finding
		S []HTMLSection
		I *Incomplete
	}{r, fs, sections, inc})
}
