package finding

import "testing"

func TestEveryCodeHasARule(t *testing.T) {
	codes := map[string]Severity{
		WrongArchBinary: Error, MissingPlatform: Error, MislabeledPlatform: Error, CPULevelUnsupported: Error,
		NotAnExecutable: Error, ArchConstraintConflict: Error, SingleArchAtRisk: Warning,
		PullFailureNotArch: Warning, ImageUninspectable: Warning,
		HardcodedPlatform: Error, BuildPlatformFinalStage: Error, ArchSpecificDownload: Error, HardcodedGOARCH: Error,
		EmulatedCompile: Warning, CrossCompileWithoutTarget: Error, ArchSpecificPackage: Error, UndeclaredPlatformArg: Error,
		BaseImageMissingPlatform: Error,
	}
	for code, sev := range codes {
		r, ok := Lookup(code)
		if !ok {
			t.Errorf("%s: no rule", code)
			continue
		}
		if r.Severity != sev {
			t.Errorf("%s: severity %s, DESIGN.md says %s", code, r.Severity, sev)
		}
		if r.Title == "" || r.Explanation == "" || r.Remediation == "" {
			t.Errorf("%s: incomplete rule %+v", code, r)
		}
	}
	if len(Rules()) != len(codes) {
		t.Errorf("%d rules, %d codes", len(Rules()), len(codes))
	}
}

func TestFailOn(t *testing.T) {
	fs := []Finding{New(SingleArchAtRisk, "x")}
	for _, tc := range []struct {
		threshold Severity
		want      bool
	}{{Error, false}, {Warning, true}, {Info, true}, {Never, false}} {
		if got := AtOrAbove(fs, tc.threshold); got != tc.want {
			t.Errorf("fail-on %s: %v, want %v", tc.threshold, got, tc.want)
		}
	}
	fs[0].Waived = "accepted: batch job runs on amd64 only"
	if AtOrAbove(fs, Info) {
		t.Error("a waived finding must not fail the run")
	}
	if _, err := ParseSeverity("critical"); err == nil {
		t.Error("unknown severity accepted")
	}
}
