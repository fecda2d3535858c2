package org.jenkinsci.plugins.workflow.libs

import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target

/**
 * Compile-time stand-in for the workflow-cps-global-lib @Library annotation
 * (org.jenkinsci.plugins.workflow.libs.Library in pipeline-groovy-lib), which Jenkins imports
 * into every Pipeline script. Only its shape matters for compiling.
 */
@Retention(RetentionPolicy.SOURCE)
@Target([ElementType.TYPE, ElementType.METHOD, ElementType.FIELD, ElementType.LOCAL_VARIABLE,
         ElementType.PACKAGE, ElementType.CONSTRUCTOR, ElementType.PARAMETER])
@interface Library {
    String[] value()
    boolean changelog() default true
}
