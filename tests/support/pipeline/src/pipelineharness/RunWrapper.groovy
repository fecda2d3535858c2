package pipelineharness

/**
 * The `currentBuild` global (workflow-support RunWrapper): result and currentResult, duration
 * while running (now - start time: RunWrapper.getDuration), number, URLs, change sets and the
 * previous build. setResult can only make the result worse (Run.setResult).
 */
class RunWrapper {
    private final Build build
    private String description
    private String displayName

    RunWrapper(Build build) {
        this.build = build
    }

    String getResult() { build.result }

    void setResult(String r) { build.setResult(r) }

    String getCurrentResult() { build.currentResult }

    boolean resultIsBetterOrEqualTo(String other) { !Build.isWorse(build.currentResult, other) }

    boolean resultIsWorseOrEqualTo(String other) { !Build.isWorse(other, build.currentResult) }

    long getDuration() { build.now() - build.startTime }

    /** Run.getDurationString while building (live mode): "<Util.getTimeSpanString> and counting". */
    String getDurationString() {
        if (build.live != null) {
            return "${Live.timeSpan(build.now() - build.startTime)} and counting".toString()
        }
        "${(build.clock - build.startTime).intdiv(1000)} sec"
    }

    long getStartTimeInMillis() { build.startTime }

    long getTimeInMillis() { build.startTime }

    int getNumber() { build.number }

    String getId() { build.number.toString() }

    String getDisplayName() { displayName ?: "#${build.number}".toString() }

    void setDisplayName(String n) {
        displayName = n
        build.event('currentBuild', [displayName: n])
    }

    String getDescription() { description }

    void setDescription(String d) {
        description = d
        build.event('currentBuild', [description: d])
    }

    String getAbsoluteUrl() { build.buildUrl }

    String getProjectName() { build.jobName.tokenize('/').last() }

    String getFullProjectName() { build.jobName }

    String getFullDisplayName() { "${build.jobName.replace('/', ' » ')} #${build.number}".toString() }

    boolean isKeepLog() { false }

    List getBuildCauses() { (List) (build.scenario.causes ?: [[_class: 'hudson.model.Cause$UserIdCause', shortDescription: 'Started by user']]) }

    /** The previous completed build, from scenario.job.previousResult (null: this is the first build). */
    Map getPreviousBuild() {
        String prev = build.job.previousResult
        prev == null ? null : [number: build.number - 1, result: prev, currentResult: prev]
    }

    Map getPreviousSuccessfulBuild() { previousBuild?.result == 'SUCCESS' ? previousBuild : null }

    /** One ChangeLogSet per checkout with changelog; entries have msg, commitId, author, affectedPaths. */
    List<List<Map>> getChangeSets() { build.changeSets.collect { it.collect { new LinkedHashMap(it) } } }

    Object getRawBuild() {
        throw new HarnessError('harness: currentBuild.rawBuild is not emulated (and needs script approval in a sandbox)')
    }
}
